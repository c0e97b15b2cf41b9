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
    MissingValueError,
    UnsafePickleError,
    UnsupportedModelError,
)
from ptycho_torch.import_tf.keras_graph import conv_sources_from_graph, parse_functional
from ptycho_torch.import_tf.params import (
    NETWORK_KEYS,
    as_intensity_scale,
    model_config_from_params,
    read_config_file,
)
from ptycho_torch.import_tf.roles import ConvSource, known_order_sources, read_weights_index
from ptycho_torch.import_tf.weights import copy_conv_weights
from ptycho_torch.model import PtychoPINN

__all__ = [
    "ImportedModel",
    "import_archive",
    "import_weights",
    "read_probe_npz",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

WEIGHTS_INDEX = "weights_index.json"
_PROBE_KEYS_NORMALISED = ("probe",)  # as the model holds it (the fixtures' probe.npz)
_PROBE_KEYS_RAW = ("probeGuess", "probe_guess")  # before the original's normalisation


@dataclass(frozen=True)
class ImportedModel:
    """The imported model and how it was assembled (for logs and reports)."""

    model: PtychoPINN
    n_convs: int
    roles_from: str  # 'graph of model.keras', 'weights_index.json' or 'known layer order'
    sources: dict[str, str] = field(default_factory=dict)  # value -> where it came from


@dataclass
class _Values:
    """The original's params and where intensity_scale and the probe come from."""

    params: dict[str, Any]
    params_problem: str | None = None
    params_refused: bool = False
    sources: dict[str, str] = field(default_factory=dict)


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
    values = _Values(dict(saved.params or {}), saved.params_problem, saved.params_refused)
    if saved.params is not None:
        values.sources["params"] = saved.member("params.dill")
    fallback_scale = None
    if saved.h5_intensity_scale is not None:
        fallback_scale = (saved.h5_intensity_scale, saved.member("model.h5") + " attribute")
    model, probe_array, probe_raw = _prepare(values, config, intensity_scale, probe, fallback_scale)
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
    values = _Values({})
    model, probe_array, probe_raw = _prepare(values, config, intensity_scale, probe, None)
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


def _prepare(
    values: _Values,
    config: str | Path | None,
    intensity_scale: float | None,
    probe: str | Path | None,
    fallback_scale: tuple[float, str] | None,
) -> tuple[PtychoPINN, np.ndarray, bool]:
    """Merge params, flags and fallbacks; refuse with every missing value named at once."""
    if config is not None:
        overrides = read_config_file(config)
        changed = sorted(
            k for k, v in overrides.items() if k in values.params and _differs(values.params[k], v)
        )
        if changed:
            logger.warning("--config %s overrides params.dill for %s", config, ", ".join(changed))
        values.params.update(overrides)
        values.sources["params"] = str(config)
    scale = _intensity_scale(values, intensity_scale, fallback_scale)
    probe_array, probe_raw = _probe(values, probe)
    missing = [k for k in NETWORK_KEYS if k not in values.params]
    wanted = []
    if missing:
        wanted.append(
            f"{', '.join(missing)} (pass --config config.json: the original's params, e.g. the "
            "config.json saved with the run, or a JSON object of the original's parameter names)"
        )
    if scale is None:
        wanted.append(
            "intensity_scale (pass --intensity-scale X: the original's params['intensity_scale'], "
            "also in the run's config.json; exp(log_scale))"
        )
    if probe_array is None:
        wanted.append(
            "probe (pass --probe FILE.npz holding 'probe', the normalised probe the model holds, "
            "or 'probeGuess', which is normalised like the original does)"
        )
    if wanted:
        message = "missing " + "; ".join(wanted)
        if values.params_refused:
            raise UnsafePickleError(
                f"{values.params_problem}. Pass the values as flags instead: {message}"
            )
        if values.params_problem is not None:
            message = f"{values.params_problem}; {message}"
        raise MissingValueError(message)
    if values.params_problem is not None:
        logger.warning(
            "params.dill not used (%s); values from flags and --config instead",
            values.params_problem,
        )
    assert scale is not None and probe_array is not None
    model_config = model_config_from_params(values.params, scale)
    if values.params.get("probe.trainable"):
        logger.warning(
            "the original had probe.trainable=True, but its probe variable is not saved; the "
            "imported probe is %s", values.sources["probe"],
        )  # fmt: skip
    logger.info("config (from %s): %s", values.sources.get("params", "?"), model_config)
    return PtychoPINN(model_config), probe_array, probe_raw


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(np.any(np.asarray(a) != np.asarray(b)))
    except (TypeError, ValueError):
        return True


def _intensity_scale(
    values: _Values, flag: float | None, fallback: tuple[float, str] | None
) -> float | None:
    candidates: list[tuple[Any, str]] = []
    if flag is not None:
        candidates.append((flag, "--intensity-scale"))
    if "intensity_scale" in values.params:
        candidates.append(
            (values.params["intensity_scale"], values.sources.get("params", "params"))
        )
    if fallback is not None:
        candidates.append(fallback)
    if not candidates:
        return None
    scale = as_intensity_scale(*candidates[0])
    values.sources["intensity_scale"] = candidates[0][1]
    for other, where in candidates[1:]:
        if as_intensity_scale(other, where) != scale:
            logger.warning("intensity_scale %r from %s differs from %s's %r",
                           scale, candidates[0][1], where, other)  # fmt: skip
    return scale


def _probe(values: _Values, flag: str | Path | None) -> tuple[np.ndarray | None, bool]:
    """``(probe, is_raw_guess)``: --probe wins over params.dill's normalised probe."""
    if flag is not None:
        array, key = read_probe_npz(flag)
        values.sources["probe"] = f"{flag}['{key}']"
        return array, key in _PROBE_KEYS_RAW
    if "probe" in values.params:
        values.sources["probe"] = f"{values.sources.get('params', 'params')}['probe'] (normalised)"
        return np.asarray(values.params["probe"]), False
    return None, False


def read_probe_npz(path: str | Path) -> tuple[np.ndarray, str]:
    """The probe array of an NPZ (no pickles) and the key it was found under."""
    path = Path(path)
    if not path.is_file():
        raise ImportTFError(f"probe file {path} does not exist; pass --probe PATH to an .npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in _PROBE_KEYS_NORMALISED + _PROBE_KEYS_RAW:
                if key in f.files:
                    return np.asarray(f[key]), key
            keys = list(f.files)
    except (OSError, ValueError) as exc:
        raise ImportTFError(
            f"cannot read probe file {path} as NPZ without pickles: {exc}"
        ) from None
    raise ImportTFError(
        f"probe file {path} has none of {list(_PROBE_KEYS_NORMALISED + _PROBE_KEYS_RAW)} "
        f"(found {keys})"
    )


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
    model: PtychoPINN, n: int, roles_from: str, values: _Values, probe: np.ndarray, raw: bool
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
