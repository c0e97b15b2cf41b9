"""Import a model trained by the original TensorFlow PtychoPINN into a PyTorch checkpoint.

Two inputs: the original's ``wts.h5.zip`` (weights, graph and params in one file) or a Keras 3
``model.weights.h5`` (weights only; params from ``--config``, probe from ``--probe``). Values
given as arguments win over the files. TensorFlow and Keras are never imported.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ptycho_torch.checkpoint import load_model, model_state_sha256, save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.import_tf.archive import open_h5, read_archive
from ptycho_torch.import_tf.errors import (
    ImportTFError,
    UnsupportedModelError,
)
from ptycho_torch.import_tf.keras_config import parse_functional
from ptycho_torch.import_tf.keras_graph import conv_sources_from_graph
from ptycho_torch.import_tf.roles import ConvSource, known_order_sources, read_weights_index
from ptycho_torch.import_tf.values import ImportValues, prepare_model
from ptycho_torch.import_tf.weights import copy_conv_weights
from ptycho_torch.model import PtychoPINN

__all__ = [
    "ImportedModel",
    "import_archive",
    "import_weights",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

WEIGHTS_INDEX = "weights_index.json"


@dataclass(frozen=True)
class ImportedModel:
    """The imported model and how it was assembled (for logs and reports)."""

    model: PtychoPINN
    n_convs: int
    roles_from: str  # 'graph of model.keras', 'weights_index.json' or 'known layer order'
    sources: dict[str, str] = field(default_factory=dict)  # value -> where it came from


def import_archive(
    archive: str | Path,
    *,
    config: str | Path | None = None,
    intensity_scale: float | None = None,
    probe: str | Path | None = None,
) -> ImportedModel:
    """Import the original's ``wts.h5.zip``: roles from its graph, params from ``params.dill``.

    Raises:
        ImportTFError: (and subclasses) with a message that says what to pass instead.
    """
    saved = read_archive(archive)
    sources, facts = conv_sources_from_graph(parse_functional(saved.keras_config))
    logger.info(
        "assigned %d conv roles from the graph of %s", len(sources), saved.member("model.keras")
    )
    values = ImportValues(dict(saved.params or {}), saved.params_problem, saved.params_refused)
    if saved.params is not None:
        values.sources["params"] = saved.member("params.dill")
    fallback_scale = None
    if saved.h5_intensity_scale is not None:
        fallback_scale = (saved.h5_intensity_scale, saved.member("model.h5") + " attribute")
    model, probe_array, probe_raw = prepare_model(
        values, config, intensity_scale, probe, fallback_scale
    )
    _check_graph_facts(facts, model.config)
    where = saved.member("model.keras") + ":model.weights.h5"
    with open_h5(saved.weights_h5, where) as f:
        n = copy_conv_weights(model, sources, f, model.config, where, facts["convs"])
    return _finish(model, n, "graph of model.keras", values, probe_array, probe_raw)


def import_weights(
    weights: str | Path,
    *,
    config: str | Path | None = None,
    intensity_scale: float | None = None,
    probe: str | Path | None = None,
) -> ImportedModel:
    """Import a Keras 3 ``model.weights.h5`` of the original; roles from ``weights_index.json``
    beside it when present, else from the original's known layer order (both shape-checked)."""
    weights = Path(weights)
    if not weights.is_file():
        raise ImportTFError(
            f"weights {weights} do not exist; pass --weights PATH to model.weights.h5"
        )
    values = ImportValues({})
    model, probe_array, probe_raw = prepare_model(values, config, intensity_scale, probe, None)
    index = weights.parent / WEIGHTS_INDEX
    sources: list[ConvSource]
    if index.is_file():
        sources, roles_from = read_weights_index(index), str(index)
    else:
        sources, roles_from = known_order_sources(model.config), "known layer order"
        logger.warning(
            "no %s beside %s: roles follow the original's known Keras layer order; shapes are "
            "checked, but amplitude and phase decoders have equal shapes and are told apart by "
            "that order only",
            WEIGHTS_INDEX, weights,
        )  # fmt: skip
    with open_h5(weights, str(weights)) as f:
        stored = _count_keras_convs(f)
        if stored != len(sources):
            raise UnsupportedModelError(
                f"{weights} holds {stored} conv layers, the original network for this config has "
                f"{len(sources)} ({roles_from}); check --config (N, gridsize, n_filters_scale, "
                "pad_object, probe.big)"
            )
        n = copy_conv_weights(model, sources, f, model.config, str(weights))
    return _finish(model, n, roles_from, values, probe_array, probe_raw)


def _check_graph_facts(facts: dict[str, Any], config: ModelConfig) -> None:
    """The archive's graph must agree with its params on what shapes cannot show."""
    problems = []
    want_shape = [None, config.N, config.N, config.C]
    if facts["input_shape"] != want_shape:
        problems.append(f"graph input {facts['input_shape']}, params say {want_shape}")
    amp_name, amp_scale = facts["amp_activation"]
    if amp_name != config.amp_activation or amp_scale not in (None, 1, 1.0):
        problems.append(f"graph amplitude activation {amp_name!r} x {amp_scale}, params say "
                        f"{config.amp_activation!r}")  # fmt: skip
    phase_name, phase_scale = facts["phase_activation"]
    if phase_name != "tanh" or phase_scale is None or not math.isclose(phase_scale, math.pi):
        problems.append(
            f"graph phase activation {phase_name!r} x {phase_scale}, expected pi * tanh"
        )
    if facts["use_polar"] is False:
        problems.append(
            "graph combines real and imaginary parts, expected amplitude * exp(i phase)"
        )
    if problems:
        raise UnsupportedModelError(
            "the archive's graph does not match its params: " + "; ".join(problems)
        )


def _count_keras_convs(f: h5py.File) -> int:
    layers = f.get("layers")
    if not isinstance(layers, h5py.Group):
        raise ImportTFError(f"{f.filename} has no 'layers' group: not a Keras 3 weights file")
    return sum(1 for name in layers if name == "conv2d" or name.startswith("conv2d_"))


def _finish(
    model: PtychoPINN, n: int, roles_from: str, values: ImportValues, probe: np.ndarray, raw: bool
) -> ImportedModel:
    config = model.config
    probe = np.squeeze(probe)
    if probe.shape != (config.N, config.N) or not np.all(np.isfinite(probe)):
        raise ImportTFError(
            f"probe from {values.sources['probe']} has shape {probe.shape}, expected finite "
            f"({config.N}, {config.N})"
        )
    if raw:
        model.set_probe(probe)  # normalised like the original (probe_scale, disk mask)
    else:
        model.set_normalised_probe(probe)
    # float32(ln(intensity_scale)), as the original's tf.constant(float(np.log(scale)))
    log_scale = np.float32(np.log(np.float64(config.intensity_scale)))
    with torch.no_grad():
        model.log_scale.copy_(torch.from_numpy(np.asarray(log_scale)))
    model = model.float().eval()
    logger.info(
        "mapped %d convs by role (%s), kernels HWIO -> OIHW; log_scale = ln(%r) = %r (float32, "
        "from %s); probe from %s",
        n, roles_from, config.intensity_scale, float(log_scale),
        values.sources["intensity_scale"], values.sources["probe"],
    )  # fmt: skip
    return ImportedModel(model, n, roles_from, dict(values.sources))


def write_checkpoint(model: PtychoPINN, out: str | Path) -> str:
    """Write ``out`` atomically (temp file beside it, then ``os.replace``) and read it back.

    Returns the weights digest (:func:`ptycho_torch.checkpoint.model_state_sha256`).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_model(model, tmp)
        digest = model_state_sha256(load_model(tmp))
        if digest != model_state_sha256(model):
            raise ImportTFError(f"checkpoint {tmp} does not read back to the same weights")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote %s (weights sha256 %s)", out, digest[:12])
    return digest
