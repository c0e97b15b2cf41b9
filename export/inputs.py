"""The fixed parity batch: read a feed NPZ (signature names) or cut one from a scan NPZ."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from export.errors import SignatureError
from ptycho_torch.config import ModelConfig
from ptycho_torch.npz import read_npz

__all__ = ["load_feed", "save_feed"]

log = logging.getLogger(__name__)


def load_feed(
    path: Path, config: ModelConfig, batch: int | None, head: str
) -> dict[str, np.ndarray]:
    """Read the parity batch for ``head`` as float32 arrays in the signature layout.

    Two layouts are accepted:
    - a *feed* NPZ whose keys are the signature's input names (``diffraction`` of shape
      ``(B, C, N, N)``, plus ``positions`` ``(B, C, 2)`` for the physics head), as the build
      writes to ``inputs.npz``;
    - a *scan* NPZ in the data contract (``diffraction`` of shape ``(n, N, N)``), or a
      PtychoPINN/Ptychodus training file (``diff3d``, :mod:`ptycho_torch.scan_layouts`): the first
      ``batch`` samples are taken, grouped into ``C`` channels by ``ptycho_torch.data`` and
      prepared as the original prepares network inputs: normalised over all groups of the
      scan, times the model's ``intensity_scale``.

    Non-float32 values are cast to float32 here, once, with a logged note.
    """
    if not path.is_file():
        raise SignatureError(f"inputs file {path} does not exist; pass --inputs PATH to an NPZ")
    arrays = read_npz(path, what="inputs")  # no pickles; sizes checked before allocating
    key = "diffraction" if "diffraction" in arrays else "diff3d"  # diff3d: a training file
    if key not in arrays:
        raise SignatureError(
            f"inputs {path} has no 'diffraction' array (a feed or a data-contract scan) nor "
            f"'diff3d' (a PtychoPINN/Ptychodus training file); found {sorted(arrays)}"
        )
    diffraction = arrays[key]
    if diffraction.ndim in (3, 4) and diffraction.shape[0] == 0:
        raise SignatureError(
            f"inputs {path}: 'diffraction' holds no patterns (shape {list(diffraction.shape)}); "
            "pass a feed or scan with at least one"
        )
    if diffraction.ndim == 4 and key == "diffraction":
        feed = _feed_from_feed(path, arrays, batch, head)
    elif diffraction.ndim == 3 or key == "diff3d":  # a scan, read by the scan reader
        feed = _feed_from_scan(path, config, batch or 4, head)
    else:
        raise SignatureError(
            f"inputs {path}: 'diffraction' must be (B, C, N, N) or a scan (n, N, N), "
            f"got shape {diffraction.shape}"
        )
    return _checked_float32(path, feed)


def _feed_from_feed(
    path: Path, arrays: dict[str, np.ndarray], batch: int | None, head: str
) -> dict[str, np.ndarray]:
    """A feed NPZ's arrays for ``head``, cut to ``batch`` samples."""
    diffraction = arrays["diffraction"]
    feed = {"diffraction": diffraction}
    if head == "physics":
        if "positions" not in arrays:
            raise SignatureError(
                f"inputs {path} has no 'positions' array, which the physics head needs "
                "(float32[B, C, 2], pixel offsets (x, y) of each patch in its group)"
            )
        feed["positions"] = arrays["positions"]
    if batch is not None and batch != diffraction.shape[0]:
        if batch > diffraction.shape[0]:
            raise SignatureError(
                f"--batch {batch} but inputs {path} holds {diffraction.shape[0]} samples"
            )
        feed = {k: v[:batch] for k, v in feed.items()}
    return feed


def _checked_float32(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed cast to float32 (once, logged), contiguous; refused if a value is not a number,
    not finite, or a diffraction amplitude is negative."""
    for name, value in list(feed.items()):
        if value.dtype != np.float32:
            if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(
                value.dtype, np.integer
            ):
                raise SignatureError(
                    f"inputs {path}: {name!r} has dtype {value.dtype}, expected float32"
                )
            log.info(
                "inputs: casting %r from %s to float32 at the loading boundary", name, value.dtype
            )
            feed[name] = value.astype(np.float32)
    for name, value in feed.items():
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            raise SignatureError(
                f"inputs {path}: {name!r} holds {bad} NaN/Inf value(s) of {value.size}; "
                "parity needs finite inputs: clean or drop those samples"
            )
    negative = int(np.count_nonzero(feed["diffraction"] < 0))
    if negative:
        raise SignatureError(
            f"inputs {path}: 'diffraction' holds {negative} negative value(s) (min "
            f"{float(feed['diffraction'].min()):.4g}); diffraction amplitudes are square roots of "
            "counts, >= 0: pass amplitudes, not background-subtracted or log-scaled data"
        )
    return {k: np.ascontiguousarray(v) for k, v in feed.items()}


def _feed_from_scan(
    path: Path, config: ModelConfig, batch: int, head: str
) -> dict[str, np.ndarray]:
    from ptycho_torch.prepare import group_scan_points, network_input, normalisation_factor
    from ptycho_torch.scan import load_npz

    data = load_npz(path)  # the data contract, float32 at this boundary
    if data.N != config.N:
        raise SignatureError(
            f"inputs {path} holds {data.N}x{data.N} patterns, the model expects N={config.N}"
        )
    if data.n < batch:
        raise SignatureError(f"--batch {batch} but the scan {path} holds only {data.n} patterns")
    groups = group_scan_points(data.xcoords, data.ycoords, config.gridsize)
    indices = groups.indices[:batch]  # (B, C)
    factor = normalisation_factor(data.diffraction, groups.indices)
    feed = {  # (B, C, N, N), the original's X * intensity_scale
        "diffraction": network_input(data.diffraction[indices], factor, config.intensity_scale)
    }
    if head == "physics":
        feed["positions"] = groups.positions[:batch]
    return feed


def save_feed(path: Path, feed: dict[str, np.ndarray]) -> None:
    np.savez(path, **feed)  # type: ignore[arg-type]
