"""Read a *case folder* written by the original TensorFlow PtychoPINN, in our layouts.

A case folder (``../shared/reference/ptychopinn-tf/n64-gs1``) holds ``config.json`` (the
original's parameters, source commit, versions), ``inputs.npz`` and ``outputs.npz`` (NHWC).
Images become NCHW by ``transpose(0, 3, 1, 2)``; the original's ``positions`` ``(B, 1, 2, C)``
hold ``-(scan position - group mean)`` as ``(x, y)``, ours are ``scan position - group centroid``
(:attr:`ptycho_torch.data.Groups.offsets`), so ``ours[b, c] = -original[b, 0, :, c]``. Only
JSON and pickle-free NPZ are read; the folder's ``.dill`` and ``wts.h5.zip`` are never opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ReferenceFormatError
from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE
from ptycho_torch.config import ModelConfig
from ptycho_torch.errors import DataError
from ptycho_torch.jsonio import read_json
from ptycho_torch.npz import read_npz

__all__ = ["OriginalCase", "read_original_case"]


@dataclass(frozen=True)
class OriginalCase:
    """One case folder of the original, converted to our layouts (NCHW, our position sign)."""

    folder: Path
    name: str  # config.json's "case", else the folder name
    config: dict[str, Any]  # the whole config.json
    feed: dict[str, np.ndarray]  # diffraction (B, C, N, N), positions (B, C, 2) when present
    outputs: dict[str, np.ndarray]  # amplitude, phase (B, C_out, N, N), pred_amplitude if present

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
        ReferenceFormatError: a file is missing or unreadable, or an array has the wrong key,
            dtype, shape or non-finite values.
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
    # the original's output keys are our output names
    for name, channels in ((AMPLITUDE, c_out), (PHASE, c_out), (PRED_AMPLITUDE, c)):
        if name in outputs or name != PRED_AMPLITUDE:
            converted[name] = _nchw(_array(outputs, name, where_out, ("B", n, n, channels), batch))
    return OriginalCase(folder, str(config.get("case") or folder.name), config, feed, converted)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise ReferenceFormatError(
            f"{path} does not exist; a case folder of the original holds config.json, "
            "inputs.npz and outputs.npz"
        )
    return path


def _read_config(path: Path) -> dict[str, Any]:
    config = read_json(_require(path), ReferenceFormatError)
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
    try:
        return read_npz(_require(path), "case file")
    except DataError as exc:
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
