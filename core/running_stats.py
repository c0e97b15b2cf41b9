"""Running statistics of a chunked comparison: float64 sums and maxima, one chunk in memory.

:class:`SideStats` keeps one side's dtype, shape and non-finite bookkeeping;
:class:`DifferenceStats` the value metrics of ``d = left - right`` (wrapped into (-pi, pi] and
weighted by the reference amplitude for angles). What the metrics mean and how they decide pass
or fail: :mod:`core.compare`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_POSITIONS", "DifferenceStats", "SideStats", "array_peak", "wrap_to_pi"]

MAX_POSITIONS = 5  # first NaN/Inf positions recorded per side


def wrap_to_pi(d: np.ndarray) -> np.ndarray:
    """Fold angles (radians) into (-pi, pi]; exact under negation up to the -pi/pi boundary."""
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN/Inf in, NaN out: callers count non-finite apart
        w = d - (2.0 * math.pi) * np.round(d / (2.0 * math.pi))
    return np.where(w <= -math.pi, w + 2.0 * math.pi, w)


def array_peak(values: np.ndarray) -> float:
    """Largest finite ``|value|`` (0 for an empty or all non-finite array): the ``peak`` of
    :attr:`core.tolerances.Tolerance.rtol_peak`. Non-finite values are counted as failures elsewhere."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    finite = a[np.isfinite(a)]
    return float(finite.max()) if finite.size else 0.0


class SideStats:
    """Dtype, shape and non-finite bookkeeping of one side of a comparison."""

    def __init__(self) -> None:
        self.dtype: str = ""
        self.row_shape: tuple[int, ...] | None = None
        self.rows = 0
        self.consistent = True
        self.nan = 0
        self.inf = 0
        self.first_nan: list[list[int]] = []
        self.first_inf: list[list[int]] = []

    def add(self, chunk: np.ndarray, offset: int) -> None:
        """Count one chunk whose first row is sample ``offset``."""
        if str(chunk.dtype) not in self.dtype.split("+"):
            # Chunks of mixed dtypes are recorded as "float32+float64" (and fail the dtype check).
            self.dtype = f"{self.dtype}+{chunk.dtype}" if self.dtype else str(chunk.dtype)
        if self.row_shape is None:
            self.row_shape = chunk.shape[1:]
        elif chunk.shape[1:] != self.row_shape:
            self.consistent = False
        self.rows += chunk.shape[0]
        if not np.issubdtype(chunk.dtype, np.inexact):
            return
        nan, inf = np.isnan(chunk), np.isinf(chunk)
        self.nan += int(nan.sum())
        self.inf += int(inf.sum())
        _first_positions(nan, offset, self.first_nan)
        _first_positions(inf, offset, self.first_inf)

    @property
    def shape(self) -> list[int]:
        """Shape of the whole side (axis 0 summed over chunks)."""
        return [self.rows, *(self.row_shape or ())]


class DifferenceStats:
    """Value metrics of ``d = left - right`` over the elements finite on both sides.

    Args:
        output: Output name (for error messages).
        floor: The constant part of the bound, ``atol + rtol_peak * peak``.
        rtol: Multiple of ``|right|`` added to ``floor`` per element.
        rel_floor: Denominator floor of the relative error.
        wrap_phase: Fold ``d`` into (-pi, pi] and compare unit phasors.
        weight_floor: ``w0`` of the angle weighting ``min(1, weight / w0)``.
    """

    def __init__(
        self,
        output: str,
        floor: float,
        rtol: float,
        rel_floor: float,
        wrap_phase: bool,
        weight_floor: float,
    ) -> None:
        self.output, self.floor, self.rtol = output, floor, rtol
        self.rel_floor, self.wrap_phase, self.weight_floor = rel_floor, wrap_phase, weight_floor
        self.weighted = False
        self.n = 0  # elements finite on both sides
        self.n_out = 0  # finite elements outside the tolerance
        self.n_nonfinite = 0  # elements non-finite on either side
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.max_ratio = -1.0
        self.sum_abs = 0.0
        self.sum_sq = 0.0
        self.sum_ref_sq = 0.0
        self.dot = 0.0
        self.sum_left_sq = 0.0
        self.worst: tuple[list[int], float, float] | None = None  # index, left, right

    def add(self, a: np.ndarray, b: np.ndarray, offset: int, weight: np.ndarray | None) -> None:
        """Add one float64 chunk pair of equal shape whose first row is sample ``offset``."""
        finite = np.isfinite(a) & np.isfinite(b)
        self.n_nonfinite += int(finite.size - finite.sum())
        a0, b0 = np.where(finite, a, 0.0), np.where(finite, b, 0.0)
        d = a0 - b0
        factor = np.ones_like(d)
        if self.wrap_phase:
            d = wrap_to_pi(d)
            if weight is not None:
                w = np.asarray(weight, dtype=np.float64)
                if w.shape != d.shape:
                    raise ValueError(
                        f"{self.output}: weight shape {w.shape} != chunk shape {d.shape}"
                    )
                factor = np.minimum(1.0, np.abs(np.nan_to_num(w)) / self.weight_floor)
                d = d * factor
                self.weighted = True
        elif weight is not None:
            raise ValueError(f"{self.output}: weight applies to phase outputs (wrap_phase=True)")
        ad = np.abs(d)
        ref = np.abs(b0)
        self.n += int(finite.sum())
        self.sum_abs += float(ad.sum())
        self.sum_sq += float(np.square(d).sum())
        self.sum_ref_sq += float(np.square(b0).sum())
        if self.wrap_phase:
            f2 = np.square(factor) * finite
            self.dot += float((f2 * np.cos(d)).sum())
            self.sum_left_sq += float(f2.sum())
        else:
            self.dot += float((a0 * b0).sum())
            self.sum_left_sq += float(np.square(a0).sum())
        if finite.any():
            self.max_abs = max(self.max_abs, float(ad.max()))
            self.max_rel = max(self.max_rel, float((ad / np.maximum(ref, self.rel_floor)).max()))
        bound = self.floor + self.rtol * ref
        self.n_out += int(((ad > bound) & finite).sum())
        ratio = _ratio(ad, bound, finite)
        flat = int(np.argmax(ratio))
        if finite.ravel()[flat] and float(ratio.ravel()[flat]) > self.max_ratio:
            self.max_ratio = float(ratio.ravel()[flat])
            index = [int(i) for i in np.unravel_index(flat, d.shape)]
            self.worst = (_shift(index, offset), float(a.ravel()[flat]), float(b.ravel()[flat]))

    def rel_l2(self) -> float:
        """``||d|| / ||right||`` (inf when only the reference is all zeros)."""
        num, den = math.sqrt(self.sum_sq), math.sqrt(self.sum_ref_sq)
        if den == 0.0:
            return 0.0 if num == 0.0 else math.inf
        return num / den

    def cosine(self) -> float:
        """Cosine similarity of the two sides (of their unit phasors for angles)."""
        if self.wrap_phase:
            # dot = sum f^2 cos(d), sum_left_sq = sum f^2 (weights of the unit phasors).
            return _clip(self.dot / self.sum_left_sq) if self.sum_left_sq else 1.0
        left_norm, ref_norm = math.sqrt(self.sum_left_sq), math.sqrt(self.sum_ref_sq)
        if left_norm == 0.0 and ref_norm == 0.0:
            return 1.0
        if left_norm == 0.0 or ref_norm == 0.0:
            return 0.0
        return _clip(self.dot / (left_norm * ref_norm))


def _ratio(ad: np.ndarray, bound: np.ndarray | float, finite: np.ndarray) -> np.ndarray:
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), ad.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            bound > 0, ad / np.where(bound > 0, bound, 1.0), np.where(ad > 0, np.inf, 0.0)
        )
    return np.where(finite, ratio, -1.0)


def _first_positions(mask: np.ndarray, offset: int, into: list[list[int]]) -> None:
    room = MAX_POSITIONS - len(into)
    if room <= 0 or not mask.any():
        return
    for flat in np.flatnonzero(mask)[:room]:
        into.append(_shift([int(i) for i in np.unravel_index(int(flat), mask.shape)], offset))


def _shift(index: list[int], offset: int) -> list[int]:
    return [index[0] + int(offset), *index[1:]]


def _clip(x: float) -> float:
    return min(1.0, max(-1.0, x))
