"""The scan data contract, torch-free: loading and validating NPZ scans (NumPy only).

Every array enters the package here: :func:`load_npz` enforces the data contract
(ARCHITECTURE.md) and casts float64/float16/uint16 diffraction to float32 and complex128 to
complex64 with one logged note, so that nothing downstream ever sees float64. Training
(:mod:`ptycho_torch.data`), ``python -m export infer`` and the torch-free inference host
(:mod:`export.predict`) prepare the network input with the same functions. Files in the original
PtychoPINN's or Ptychodus's training layout (``diff3d``) are read through
:mod:`ptycho_torch.scan_layouts`, which serves them in the contract's names. A scan read a batch
at a time: :mod:`ptycho_torch.scan_reader`; the network input made from it:
:mod:`ptycho_torch.prepare`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho_torch.errors import DataError
from ptycho_torch.scan_layouts import read_scan_arrays

__all__ = [
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "PtychoData",
    "check_diffraction",
    "check_layout",
    "existing_scan",
    "load_npz",
    "to_float64_coords",
]

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "probeGuess", "xcoords", "ycoords")
OPTIONAL_KEYS = ("objectGuess", "Y", "scan_index")
_DIFFRACTION_CASTS = (np.float64, np.float16, np.uint16)


@dataclass(frozen=True)
class PtychoData:
    """A scan as the package uses it: float32 diffraction, complex64 fields, float64 coordinates."""

    diffraction: np.ndarray  # (n, N, N) float32 amplitude
    probe: np.ndarray  # (N, N) complex64
    xcoords: np.ndarray  # (n,) float64 patch centres, object pixels
    ycoords: np.ndarray  # (n,) float64
    obj: np.ndarray | None = None  # (M, M) complex64 ground truth / guess ("objectGuess")
    patches: np.ndarray | None = None  # (n, N, N) complex64 ground-truth patches ("Y")
    scan_index: np.ndarray | None = None  # (n,) int64

    @property
    def n(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:
        return int(self.diffraction.shape[-1])


Layout = dict[str, tuple[tuple[int, ...], np.dtype]]  # key -> (shape, dtype)


def check_layout(path: Path, layout: Layout) -> tuple[int, int]:
    """Keys, shapes and dtypes of a scan, from its arrays or from their NPZ headers alone.

    Returns:
        ``(n, N)``: the number of patterns and their side.

    Raises:
        DataError: naming the key, what was expected and what was found.
    """
    missing = [k for k in REQUIRED_KEYS if k not in layout]
    if missing:
        raise DataError(
            f"{path}: missing key(s) {missing}; expected {list(REQUIRED_KEYS)} "
            f"(optional {list(OPTIONAL_KEYS)}), found {sorted(layout)}"
        )
    shape, dtype = layout["diffraction"]
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] == 0:
        raise DataError(
            f"{path}: key 'diffraction' must have shape (n, N, N) with n >= 1, found {shape}"
        )
    if dtype != np.float32 and not any(dtype == t for t in _DIFFRACTION_CASTS):
        raise DataError(
            f"{path}: key 'diffraction' must be float32 (float64, float16 and uint16 are "
            f"cast), found {dtype}"
        )
    n, big_n = shape[0], shape[-1]
    expected: dict[str, tuple[tuple[int | None, ...], str]] = {
        "probeGuess": ((big_n, big_n), "complex64"),
        "xcoords": ((n,), "float64"),
        "ycoords": ((n,), "float64"),
        "objectGuess": ((None, None), "complex64"),
        "Y": ((n, big_n, big_n), "complex64"),
        "scan_index": ((n,), "int"),
    }
    for key, (want_shape, want_dtype) in expected.items():
        if key not in layout:
            continue
        shape, dtype = layout[key]
        ok = len(shape) == len(want_shape) and all(
            e is None or e == s for e, s in zip(want_shape, shape)
        )
        if not ok:
            shown = tuple("?" if e is None else e for e in want_shape)
            raise DataError(f"{path}: key {key!r} must have shape {shown}, found {tuple(shape)}")
        if not _dtype_fits(dtype, want_dtype):
            raise DataError(f"{path}: key {key!r} must be {want_dtype}, found {dtype}")
    return n, big_n


def _dtype_fits(dtype: np.dtype, wanted: str) -> bool:
    """Whether ``dtype`` converts to ``wanted`` without losing meaning (the casts load notes)."""
    if wanted == "complex64":
        return bool(dtype in (np.complex64, np.complex128) or np.issubdtype(dtype, np.floating))
    if wanted == "float64":
        return bool(np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer))
    return bool(np.issubdtype(dtype, np.integer))


def _to_complex64(key: str, value: np.ndarray, casts: list[str]) -> np.ndarray:
    if value.dtype == np.complex64:
        return value
    casts.append(f"{key} {value.dtype}->complex64")
    return value.astype(np.complex64)


def to_float64_coords(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    value = value.astype(np.float64)
    if not np.all(np.isfinite(value)):
        raise DataError(f"{path}: key {key!r} has non-finite values; expected finite coordinates")
    return value


def check_diffraction(
    path: Path, value: np.ndarray, casts: list[str], first_pattern: int = 0
) -> np.ndarray:
    """``value`` (patterns of a scan whose layout passed :func:`check_layout`) as float32.

    float64, float16 and uint16 are cast (noted in ``casts``); non-finite or negative values
    are refused, naming the first pattern (``first_pattern`` is the index of ``value[0]`` in
    the scan, for callers that check a scan chunk by chunk).
    """
    if value.dtype != np.float32:
        casts.append(f"diffraction {value.dtype}->float32")
        value = value.astype(np.float32)
    bad = ~np.isfinite(value)
    if bad.any():
        first = first_pattern + int(np.argwhere(bad)[0][0])
        raise DataError(
            f"{path}: key 'diffraction' has {int(bad.sum())} non-finite values (first in pattern "
            f"{first}); expected finite amplitudes >= 0"
        )
    if (value < 0).any():
        first = first_pattern + int(np.argwhere(value < 0)[0][0])
        raise DataError(
            f"{path}: key 'diffraction' has {int((value < 0).sum())} negative values (first in "
            f"pattern {first}); expected amplitudes >= 0 (sqrt of counts, not intensities minus "
            "background)"
        )
    return value


def load_npz(path: str | Path) -> PtychoData:
    """Load and validate a scan NPZ; the only place where dtypes are converted.

    Raises:
        DataError: missing file or key, pickled/object array, wrong shape or dtype, negative or
            non-finite diffraction. The message names the key, what was expected and found.
    """
    path = existing_scan(path)
    arrays = read_scan_arrays(path)  # contract names, whatever the layout (scan_layouts)
    raw = {k: arrays[k] for k in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if k in arrays}
    check_layout(path, {k: (v.shape, v.dtype) for k, v in raw.items()} | _others(arrays))
    casts: list[str] = []
    diffraction = check_diffraction(path, raw["diffraction"], casts)
    probe = _to_complex64("probeGuess", raw["probeGuess"], casts)
    coords = {k: to_float64_coords(path, k, raw[k]) for k in ("xcoords", "ycoords")}
    obj = patches = scan_index = None
    if "objectGuess" in raw:
        obj = _to_complex64("objectGuess", raw["objectGuess"], casts)
    if "Y" in raw:
        patches = _to_complex64("Y", raw["Y"], casts)
    if "scan_index" in raw:
        scan_index = raw["scan_index"].astype(np.int64)
    if casts:
        logger.warning("%s: cast at load to the float32 contract: %s", path.name, ", ".join(casts))
    return PtychoData(
        diffraction=diffraction,
        probe=probe,
        xcoords=coords["xcoords"],
        ycoords=coords["ycoords"],
        obj=obj,
        patches=patches,
        scan_index=scan_index,
    )


def existing_scan(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; pass --data PATH to an .npz scan")
    return path


def _others(arrays: dict[str, np.ndarray]) -> Layout:
    """Keys outside the contract, listed in the missing-key message only."""
    known = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
    return {k: (v.shape, v.dtype) for k, v in arrays.items() if k not in known}
