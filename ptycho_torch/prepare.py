"""The network input made from a scan, torch-free: counts per pattern, the original's data-side
normalisation and intensity scale, and grouping scan points into samples of C (NumPy only).

Training (:mod:`ptycho_torch.data`), ``python -m export infer`` and the torch-free inference host
(:mod:`export.predict`) use these same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptycho_torch.errors import DataError

__all__ = [
    "Groups",
    "factor_from_counts",
    "group_scan_points",
    "intensity_scale",
    "mean_counts",
    "network_input",
    "normalisation_factor",
    "pattern_counts",
]


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
