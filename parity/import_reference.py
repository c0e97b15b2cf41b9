"""Import arrays written by the original TensorFlow PtychoPINN as a reference and a feed.

A *case folder* of the original (layout of ``../shared/reference/ptychopinn-tf/n64-gs1``) holds
``config.json`` (the original's parameters, source commit, versions), ``inputs.npz`` (the model
inputs, NHWC) and ``outputs.npz`` (the model outputs, NHWC). This module turns it into our
formats:

- a *feed* NPZ in our signature: ``diffraction`` ``float32[B, C, N, N]`` and ``positions``
  ``float32[B, C, 2]``;
- a *reference* (:func:`parity.reference.save_reference`) for one head: ``amplitude``,
  ``phase`` (and ``pred_amplitude`` for the physics head) as ``float32[B, C, N, N]``, with the
  provenance the stale check needs.

Conversions: images NHWC ``(B, N, N, C)`` -> NCHW by ``transpose(0, 3, 1, 2)``. The original's
``positions`` ``(B, 1, 2, C)`` hold ``[:, 0, 0, c] = x``, ``[:, 0, 1, c] = y`` with the value
``-(scan position - group mean)``; ours are ``scan position - group centroid``
(:attr:`ptycho_torch.data.Groups.offsets`), so ``ours[b, c] = -original[b, 0, :, c]``.

One reference per head: the stale check compares the reference's ``head`` and its
``inputs_sha256`` (digest of the head's inputs only) with the artifacts', so an object-head
reference cannot serve a physics build or the reverse. The feed holds both inputs and serves
both heads (the object build reads only ``diffraction``).

Only ``np.load(allow_pickle=False)`` and JSON are read; the folder's ``.dill`` pickles and its
``wts.h5.zip`` archive are never opened.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.manifest import sha256_file
from export.signature import Signature, make_signature
from parity.errors import ReferenceFormatError
from parity.reference import Reference, atomic_write, save_reference
from parity.tolerances import PAIR_CLASSES
from ptycho_torch.config import ModelConfig
from ptycho_torch.digest import arrays_sha256

__all__ = [
    "GENERATOR",
    "ORIGINAL_TOLERANCES",
    "SOURCE_KINDS",
    "OriginalCase",
    "import_reference",
    "read_original_case",
]

log = logging.getLogger(__name__)

GENERATOR = "ptychopinn-tf (original)"
SOURCE_KINDS = ("ptychopinn-tf",)
HEAD_OUTPUTS = {
    "object": ("amplitude", "phase"),
    "physics": ("amplitude", "phase", "pred_amplitude"),
}
HEAD_INPUTS = {"object": ("diffraction",), "physics": ("diffraction", "positions")}

# The original's gridsize-1 amplitude peaks at ~674 (its swish border path is unbounded) and
# pred_amplitude at ~1e4: float32 resolution there is ~6e-5 and ~1e-3, so these outputs are
# judged relative to their peak (the mission's 2e-6 x peak on CPU). Phase keeps 4e-6 rad plus
# 1e-6 of its peak: the border path's phase is an unbounded swish too (up to 3.57 rad next to
# amplitudes of ~600); against a float64 run of the same weights the original TF is 3.0e-6 rad
# off there and eager PyTorch 3.5e-6 on the other side, so the two differ by 4.5e-6 at one
# pixel of 65536 (n64-gs1). The CUDA figures mirror the default table and are not measured yet.
_PEAK_RELATIVE = {
    "cpu": {"atol": 0.0, "rtol": 0.0, "rtol_peak": 2e-6},
    "cuda": {"atol": 0.0, "rtol": 0.0, "rtol_peak": 1e-5},
}
_PHASE = {
    "cpu": {"atol": 4e-6, "rtol": 0.0, "rtol_peak": 1e-6},
    "cuda": {"atol": 1e-5, "rtol": 0.0, "rtol_peak": 1e-6},
}
ORIGINAL_TOLERANCES: dict[str, Any] = {
    "tolerances": {
        output: {pair_class: dict(entry) for pair_class in PAIR_CLASSES}
        for output, entry in (
            ("amplitude", _PEAK_RELATIVE),
            ("pred_amplitude", _PEAK_RELATIVE),
            ("phase", _PHASE),
        )
    },
    "notes": ["peak-relative entries for a reference imported from the original TensorFlow code"],
}

_NETWORK_KEYS = {  # the original's name -> ModelConfig field, checked against --checkpoint
    "N": "N",
    "gridsize": "gridsize",
    "n_filters_scale": "n_filters_scale",
    "object.big": "object_big",
    "probe.big": "probe_big",
    "pad_object": "pad_object",
    "amp_activation": "amp_activation",
}


@dataclass(frozen=True)
class OriginalCase:
    """One case folder of the original, converted to our layouts (NCHW, our position sign).

    Attributes:
        folder: The case folder.
        name: Case name (``config.json`` ``case``, else the folder name).
        config: The whole ``config.json``.
        feed: ``diffraction`` (B, C, N, N) and, when present, ``positions`` (B, C, 2), float32.
        outputs: ``amplitude``, ``phase`` (B, C_out, N, N) and, when present,
            ``pred_amplitude`` (B, C, N, N), float32.
    """

    folder: Path
    name: str
    config: dict[str, Any]
    feed: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    @property
    def network(self) -> dict[str, Any]:
        """The original's ``network_and_physics`` parameters (original names)."""
        return dict(self.config["network_and_physics"])

    def signature_config(self) -> ModelConfig:
        """A ModelConfig with the fields the signature depends on (N, gridsize, object.big)."""
        net = self.network
        return ModelConfig(N=net["N"], gridsize=net["gridsize"], object_big=net["object.big"])


def read_original_case(folder: str | Path) -> OriginalCase:
    """Read and validate a case folder; every array comes back in our layout.

    Raises:
        ReferenceFormatError: A file is missing, not JSON / not a pickle-free NPZ, or an array
            has the wrong key, dtype, shape or non-finite values (the message names what was
            expected, what was found and how to fix it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReferenceFormatError(
            f"{folder} is not a folder; pass the case folder written by the original "
            "(config.json, inputs.npz, outputs.npz), e.g. .../ptychopinn-tf/n64-gs1"
        )
    config = _read_config(folder / "config.json")
    net = config["network_and_physics"]
    n, c = int(net["N"]), int(net["gridsize"]) ** 2
    c_out = c if net["object.big"] else 1
    inputs = _read_npz(folder / "inputs.npz")
    outputs = _read_npz(folder / "outputs.npz")
    where_in, where_out = folder / "inputs.npz", folder / "outputs.npz"
    batch = _array(inputs, "diffraction", where_in, ("B", n, n, c), None).shape[0]
    feed = {"diffraction": _nchw(inputs["diffraction"])}
    if "positions" in inputs:
        positions = _array(inputs, "positions", where_in, ("B", 1, 2, c), batch)
        # (B, 1, 2, C) -> (B, C, 2), and ours = scan - centroid = -(the original's value)
        feed["positions"] = np.ascontiguousarray(-positions[:, 0].transpose(0, 2, 1))
    converted = {}
    for name, channels in (("amplitude", c_out), ("phase", c_out), ("pred_amplitude", c)):
        if name in outputs or name != "pred_amplitude":
            converted[name] = _nchw(_array(outputs, name, where_out, ("B", n, n, channels), batch))
    return OriginalCase(folder, str(config.get("case") or folder.name), config, feed, converted)


def import_reference(
    source: str | Path,
    out: str | Path,
    head: str = "object",
    checkpoint: str | Path | None = None,
    inputs_out: str | Path | None = None,
) -> tuple[Reference, Path]:
    """Write the reference of ``head`` (``out`` + its ``.json``) and the feed NPZ.

    Args:
        source: Case folder written by the original.
        out: ``reference.npz`` to write; the provenance goes beside it as ``.json``.
        head: ``object`` or ``physics``.
        checkpoint: The model imported from the same case (``python -m ptycho_torch.import_tf``);
            its weights digest goes into the provenance. Without it the reference records
            ``weights_sha256: null`` and every parity check of it stops as stale (exit 4).
        inputs_out: Feed NPZ to write (default: ``inputs.npz`` beside ``out``).

    Returns:
        The reference written and the feed path.
    """
    if head not in HEAD_OUTPUTS:
        raise ReferenceFormatError(f"--head must be one of {list(HEAD_OUTPUTS)}, got {head!r}")
    out = Path(out)
    feed_path = Path(inputs_out) if inputs_out is not None else out.parent / "inputs.npz"
    if feed_path.resolve() == out.resolve():
        raise ReferenceFormatError(f"--inputs-out and --out are the same file {out}")
    case = read_original_case(source)
    missing = [k for k in HEAD_INPUTS[head] if k not in case.feed]
    missing += [k for k in HEAD_OUTPUTS[head] if k not in case.outputs]
    if missing:
        raise ReferenceFormatError(
            f"case {case.folder} lacks {missing} (in inputs.npz / outputs.npz), which the {head} "
            "head needs; import it with --head object, or add the arrays"
        )
    config, weights = _weights(case, checkpoint)
    signature = make_signature(config, int(case.feed["diffraction"].shape[0]), head)
    feed = {k: case.feed[k] for k in signature.input_names}
    signature.check_feed(feed)
    outputs = {k: case.outputs[k] for k in signature.output_names}
    signature.check_outputs(outputs)
    provenance = _provenance(case, signature, arrays_sha256(feed), weights, out, feed_path)
    feed_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(feed_path, lambda f: np.savez(f, **case.feed))  # type: ignore[arg-type]
    reference = save_reference(out, outputs, provenance)
    log.debug(
        "import-reference: %s head of case %s -> %s, feed %s", head, case.name, out, feed_path
    )
    return reference, feed_path


def _weights(case: OriginalCase, checkpoint: str | Path | None) -> tuple[ModelConfig, dict]:
    """The signature's config and the weights record (digest or why it is unknown)."""
    if checkpoint is None:
        return case.signature_config(), {
            "weights_sha256": None,
            "weights_note": "imported without --checkpoint: the weights it belongs to are unknown",
        }
    from ptycho_torch.checkpoint import load_model, model_state_sha256

    model = load_model(checkpoint)
    net = case.network
    wrong = [
        f"{orig}={net[orig]!r} (checkpoint: {getattr(model.config, ours)!r})"
        for orig, ours in _NETWORK_KEYS.items()
        if orig in net and net[orig] != getattr(model.config, ours)
    ]
    if wrong:
        raise ReferenceFormatError(
            f"checkpoint {checkpoint} is not the model of case {case.name}: the case has "
            + ", ".join(wrong)
            + f"; import this case's weights with `python -m ptycho_torch.import_tf` "
            f"(see {case.folder}/README.md) and pass that file"
        )
    return model.config, {
        "weights_sha256": model_state_sha256(model),
        "checkpoint": str(checkpoint),
    }


def _provenance(
    case: OriginalCase,
    signature: Signature,
    inputs_sha: str,
    weights: dict[str, Any],
    out: Path,
    feed_path: Path,
) -> dict[str, Any]:
    source = case.config.get("source") or {}
    runtime = case.config.get("runtime") or {}
    for key, where in (
        ("repository", source),
        ("commit", source),
        ("tensorflow", runtime),
        ("keras", runtime),
        ("date", runtime),
    ):
        if key not in where:
            log.warning("import-reference: config.json of %s does not say %r", case.name, key)
    return {
        "generator": GENERATOR,
        "head": signature.head,
        "signature": signature.to_dict(),
        **weights,
        "inputs_sha256": inputs_sha,
        "case": case.name,
        "original": {
            "repository": source.get("repository"),
            "commit": source.get("commit"),
            "code": source.get("code"),
        },
        "original_config": case.network,
        "original_weight_files_sha256": case.config.get("sha256"),
        "original_files_sha256": {
            name: sha256_file(case.folder / name)
            for name in ("config.json", "inputs.npz", "outputs.npz")
        },
        "created": runtime.get("date"),
        "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow_version": runtime.get("tensorflow"),
        "keras_version": runtime.get("keras"),
        "python_version": runtime.get("python"),
        "device": runtime.get("device"),
        "tf32": runtime.get("tf32_execution"),
        "onednn": runtime.get("oneDNN"),
        "conversion": (
            "images NHWC (B,N,N,C) -> NCHW (B,C,N,N) by transpose(0,3,1,2); positions "
            "(B,1,2,C) -> (B,C,2) (x, y), negated: ours = scan - group centroid = -original"
        ),
        "tolerances": ORIGINAL_TOLERANCES,
        "remedy": (
            "Re-import it with the weights imported from the same case: python -m parity "
            f"import-reference --from ptychopinn-tf {case.folder} --out {out} --head "
            f"{signature.head} --inputs-out {feed_path} --checkpoint MODEL.pt, then build with "
            f"--checkpoint MODEL.pt --inputs {feed_path}"
        ),
    }


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReferenceFormatError(
            f"{path} does not exist; a case folder of the original holds config.json, "
            "inputs.npz and outputs.npz"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceFormatError(f"cannot read {path} as JSON: {exc}") from None
    net = config.get("network_and_physics") if isinstance(config, dict) else None
    if not isinstance(net, dict):
        raise ReferenceFormatError(
            f"{path} must be a JSON object with a 'network_and_physics' object (the original's "
            f"parameters); found {sorted(config) if isinstance(config, dict) else type(config).__name__}"
        )
    missing = [k for k in ("N", "gridsize", "object.big") if k not in net]
    if missing:
        raise ReferenceFormatError(f"{path}: 'network_and_physics' lacks {missing}")
    for key in ("N", "gridsize"):
        if not isinstance(net[key], int) or isinstance(net[key], bool) or net[key] < 1:
            raise ReferenceFormatError(
                f"{path}: network_and_physics.{key} must be a positive integer, got {net[key]!r}"
            )
    if not isinstance(net["object.big"], bool):
        raise ReferenceFormatError(
            f"{path}: network_and_physics['object.big'] must be true or false, "
            f"got {net['object.big']!r}"
        )
    return config


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ReferenceFormatError(
            f"{path} does not exist; a case folder of the original holds config.json, "
            "inputs.npz and outputs.npz"
        )
    if not zipfile.is_zipfile(path):
        raise ReferenceFormatError(f"{path} is not an NPZ file (a zip written by np.savez)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ReferenceFormatError(
            f"cannot read {path} without pickles ({exc}); every array must be a plain "
            "numeric array saved with np.savez"
        ) from None


def _array(
    arrays: dict[str, np.ndarray],
    name: str,
    where: Path,
    shape: tuple[int | str, ...],
    batch: int | None,
) -> np.ndarray:
    """``arrays[name]``, checked: float32, ``shape`` ("B" = any batch, or ``batch``), finite."""
    expected = tuple(batch if d == "B" and batch is not None else d for d in shape)
    text = f"float32[{', '.join(map(str, expected))}]"
    if name not in arrays:
        raise ReferenceFormatError(
            f"{where} lacks {name!r} ({text}, NHWC as the original writes it); "
            f"it holds {sorted(arrays)}"
        )
    a = arrays[name]
    fits = a.ndim == len(expected) and all(
        e == "B" or int(e) == d for e, d in zip(expected, a.shape)
    )
    if a.dtype != np.float32 or not fits:
        raise ReferenceFormatError(
            f"{where}: {name!r} is {a.dtype}{list(a.shape)}, expected {text} (NHWC, with N, "
            "gridsize and object.big from config.json); the original writes float32 arrays "
            "in this layout: check that config.json belongs to these arrays"
        )
    bad = int(a.size - np.isfinite(a).sum())
    if bad:
        raise ReferenceFormatError(
            f"{where}: {name!r} holds {bad} NaN/Inf values; a reference must be finite"
        )
    return a


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
