"""The scan data contract, torch-free: loading and validating NPZ scans, grouping scan points,
and the original's data-side normalisation (NumPy only).

Every array enters the package here: :func:`load_npz` enforces the data contract
(ARCHITECTURE.md) and casts float64/float16/uint16 diffraction to float32 and complex128 to
complex64 with one logged note, so that nothing downstream ever sees float64. Training
(:mod:`ptycho_torch.data`), ``python -m export infer`` and the torch-free inference host
(:mod:`export.predict`) prepare the network input with the same functions. Files in the original
PtychoPINN's or Ptychodus's training layout (``diff3d``) are read through
:mod:`ptycho_torch.scan_layouts`, which serves them in the contract's names.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho_torch.errors import DataError
from ptycho_torch.scan_layouts import ScanRows, read_scan_arrays

__all__ = [
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "Groups",
    "PtychoData",
    "ScanReader",
    "check_diffraction",
    "check_layout",
    "factor_from_counts",
    "group_scan_points",
    "intensity_scale",
    "load_npz",
    "mean_counts",
    "network_input",
    "normalisation_factor",
    "pattern_counts",
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


def _to_float64_coords(path: Path, key: str, value: np.ndarray) -> np.ndarray:
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
    path = _existing(path)
    arrays = read_scan_arrays(path)  # contract names, whatever the layout (scan_layouts)
    raw = {k: arrays[k] for k in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if k in arrays}
    check_layout(path, {k: (v.shape, v.dtype) for k, v in raw.items()} | _others(arrays))
    casts: list[str] = []
    diffraction = check_diffraction(path, raw["diffraction"], casts)
    probe = _to_complex64("probeGuess", raw["probeGuess"], casts)
    coords = {k: _to_float64_coords(path, k, raw[k]) for k in ("xcoords", "ycoords")}
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


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; pass --data PATH to an .npz scan")
    return path


def _others(arrays: dict[str, np.ndarray]) -> Layout:
    """Keys outside the contract, listed in the missing-key message only."""
    known = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
    return {k: (v.shape, v.dtype) for k, v in arrays.items() if k not in known}


class ScanReader:
    """A scan NPZ read a batch at a time: the checks and casts of :func:`load_npz`, in bounded
    memory (the torch-free inference host reconstructs scans of any length with it).

    Opening checks every key's shape and dtype from the NPZ headers and reads the small arrays
    (coordinates); ``diffraction`` is read only by :meth:`rows` and :meth:`take`, which cast it
    to float32 and refuse NaN, Inf and negative values naming the pattern. ``objectGuess`` and
    ``Y`` are never read (only ``objectGuess``'s shape, the object's frame). Use as a context
    manager.

    Attributes:
        n, N: number of patterns and their side.
        xcoords, ycoords: ``(n,)`` float64 patch centres.
        object_shape: shape of ``objectGuess``, or None without one.
        casts: the dtype conversions :meth:`rows` applies (logged once, at opening).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = _existing(path)
        self._rows = ScanRows(self.path)  # contract names, whatever the layout (scan_layouts)
        try:
            self._open()
        except BaseException:
            self._rows.close()
            raise

    def _open(self) -> None:
        layout = {k: (m.shape, m.dtype) for k, m in self._rows.members.items()}
        self.n, self.N = check_layout(self.path, layout)
        self.casts: list[str] = []
        if layout["diffraction"][1] != np.float32:
            self.casts.append(f"diffraction {layout['diffraction'][1]}->float32")
        self.xcoords, self.ycoords = (
            _to_float64_coords(self.path, k, self._rows.array(k)) for k in ("xcoords", "ycoords")
        )
        self.object_shape: tuple[int, int] | None = None
        if "objectGuess" in layout:
            rows, cols = layout["objectGuess"][0]
            self.object_shape = (rows, cols)
        if self.casts:
            logger.warning(
                "%s: cast at load to the float32 contract: %s",
                self.path.name,
                ", ".join(self.casts),
            )

    def __enter__(self) -> ScanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._rows.close()

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Patterns ``start:stop`` as float32 ``(b, N, N)``, checked."""
        return check_diffraction(self.path, self._rows.rows("diffraction", start, stop), [], start)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Patterns ``indices`` (any shape) as float32 ``(*indices.shape, N, N)``, checked."""
        flat = np.asarray(indices).reshape(-1)
        values = self._rows.take("diffraction", flat)
        try:
            values = check_diffraction(self.path, values, [])
        except DataError:  # name the scan's pattern, not the position in this batch
            bad = ~np.isfinite(values) | (values < 0)
            first = int(flat[np.argwhere(bad.reshape(len(flat), -1).any(axis=1))[0][0]])
            check_diffraction(
                self.path, self._rows.rows("diffraction", first, first + 1), [], first
            )
            raise
        return values.reshape((*np.shape(indices), self.N, self.N))

    def pattern_counts(self, chunk: int = 256) -> np.ndarray:
        """:func:`pattern_counts` of every pattern, reading ``chunk`` patterns at a time; checks
        every pattern on the way (so a bad value stops the run before the model runs)."""
        counts = np.empty(self.n, dtype=np.float64)
        for start in range(0, self.n, chunk):
            counts[start : start + chunk] = pattern_counts(self.rows(start, start + chunk))
        return counts


def pattern_counts(diffraction: np.ndarray) -> np.ndarray:
    """Counts per pattern, ``sum(d**2)`` over each ``(N, N)`` pattern, in float64: ``(n,)``.

    Row by row, so a scan read in chunks gives the same values as the whole array.
    """
    return np.sum(np.square(diffraction, dtype=np.float64), axis=(-2, -1))


def mean_counts(diffraction: np.ndarray, indices: np.ndarray | None = None) -> float:
    """Mean over patterns (or over the patterns of ``indices``, repeats counted) of ``sum(d**2)``."""
    return _mean_counts(pattern_counts(diffraction), indices)


def _mean_counts(counts: np.ndarray, indices: np.ndarray | None) -> float:
    value = float(np.mean(counts if indices is None else counts[indices]))
    if not value > 0:
        raise DataError(f"diffraction has no counts (mean sum of squares {value}); is it all zero?")
    return value


def intensity_scale(diffraction: np.ndarray, nphotons: float | None = None) -> float:
    """The original's intensity scale ``sqrt(nphotons) / (N/2)``.

    ``nphotons`` defaults to the data's own mean counts per pattern, so that the network input
    ``normalised * scale`` is the measured amplitude itself. The network divides its input by
    this scale (``exp(log_scale)``), so it sees the normalised data.
    """
    n = diffraction.shape[-1]
    photons = mean_counts(diffraction) if nphotons is None else float(nphotons)
    if not photons > 0:
        raise DataError(f"nphotons must be > 0, got {photons}")
    return math.sqrt(photons) / (n / 2)


def normalisation_factor(diffraction: np.ndarray, indices: np.ndarray | None = None) -> float:
    """The original's ``normalize_data`` factor: ``sqrt((N/2)**2 / mean(sum(d**2)))``.

    The mean runs over the patterns the model will see: every group member of ``indices``
    (``(S, C)``, repeats counted), or every pattern.
    """
    return factor_from_counts(pattern_counts(diffraction), diffraction.shape[-1], indices)


def factor_from_counts(counts: np.ndarray, n: int, indices: np.ndarray | None = None) -> float:
    """:func:`normalisation_factor` from the scan's :func:`pattern_counts` and pattern side
    ``n``: for a scan read chunk by chunk, which never holds the whole diffraction array."""
    return math.sqrt((n / 2) ** 2 / _mean_counts(counts, indices))


def network_input(diffraction: np.ndarray, factor: float, scale: float) -> np.ndarray:
    """``float32(float32(d * factor) * scale)``: the original's ``X * intensity_scale``."""
    x = (diffraction * np.float32(factor)).astype(np.float32, copy=False)
    return (x * np.float32(scale)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Groups:
    """Samples of C scan points each: indices into the scan and positions relative to the group centroid."""

    indices: np.ndarray  # (S, C) int64
    positions: np.ndarray  # (S, C, 2) float32, (x, y) pixels relative to the centroid


def group_scan_points(
    xcoords: np.ndarray, ycoords: np.ndarray, gridsize: int, neighbours: int = 6, seed: int = 0
) -> Groups:
    """One sample per scan point: the point plus ``gridsize**2 - 1`` of its nearest neighbours.

    The companions are drawn (seeded) from the ``max(neighbours, C - 1)`` nearest points;
    gridsize 1 gives one-point groups at position zero.
    """
    c = gridsize * gridsize
    xy = np.stack([xcoords, ycoords], axis=1).astype(np.float64)  # (n, 2)
    n = len(xy)
    if c == 1:
        return Groups(np.arange(n, dtype=np.int64)[:, None], np.zeros((n, 1, 2), np.float32))
    if n < c:
        raise DataError(f"gridsize {gridsize} needs at least {c} scan points, found {n}")
    k = min(max(neighbours, c - 1), n - 1)
    rng = np.random.default_rng(seed)
    indices = np.empty((n, c), dtype=np.int64)
    for start in range(0, n, 1024):  # chunked distances keep memory at 1024 x n
        block = xy[start : start + 1024]
        d2 = ((block[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]  # (b, k)
        for row, candidates in enumerate(nearest):
            chosen = rng.choice(candidates, size=c - 1, replace=False)
            indices[start + row] = np.concatenate([[start + row], chosen])
    points = xy[indices]  # (n, C, 2)
    positions = points - points.mean(axis=1, keepdims=True)
    return Groups(indices, positions.astype(np.float32))
