"""Compare one output of two runners, chunk by chunk, with bounded memory.

Order of checks (all failures are collected, none stops the others):

1. **dtype**: both sides must be ``expected_dtype`` (float32). A mismatch is failure
   ``dtype`` and names both dtypes; values are still compared (in float64) when shapes match,
   so the report shows them.
2. **shape**: both sides must have the same shape (failure ``shape``); chunks whose shapes
   differ are not compared.
3. **nonfinite**: any NaN or Inf on either side fails (``nonfinite``), with counts and the
   first positions per side. Value metrics cover the elements finite on both sides; the others
   count as out of tolerance.
4. **tolerance**: an element is out when ``|d| > atol + rtol * |right| + rtol_peak * peak``
   (``peak``: the output's largest ``|value|`` over the whole compared set, given by the caller,
   since a chunk alone does not know it); the output fails when more than ``max_fraction_out``
   of its elements are out.

``right`` is the reference side (Polygraphy's convention) and ``d = left - right``. Metrics are
accumulated in float64: max abs, max rel (``|d| / max(|right|, rel_floor)`` with
``REL_FLOOR = 1e-3``: float32 outputs of this network carry ~1e-7 absolute noise, so relative
errors of values below 1e-3 say nothing), mean abs, RMS, relative L2 (``||d|| / ||right||``),
cosine similarity, the count and fraction out of tolerance, and the worst element: the one using
the largest share of its tolerance (for an absolute tolerance, the max-abs element).

**Phase** (``wrap_phase=True``): ``d`` is folded into (-pi, pi] first, so ``a`` and
``a + 2*pi*k`` agree. The cosine similarity is that of the unit phasors ``exp(i*phase)``,
i.e. a weighted mean of ``cos(d)``. Where ``weight`` (the reference amplitude) is given, each
phase error is multiplied by ``min(1, weight / PHASE_WEIGHT_FLOOR)`` with
``PHASE_WEIGHT_FLOOR = 1e-2``: phase is undefined where the amplitude is ~0, so errors there
fade out linearly below 1 % of the sigmoid amplitude's full scale instead of failing the check.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from parity.results import OutputComparison
from parity.tolerances import Tolerance

__all__ = [
    "MAX_POSITIONS",
    "PHASE_WEIGHT_FLOOR",
    "REL_FLOOR",
    "ComparisonAccumulator",
    "array_peak",
    "compare_arrays",
    "wrap_to_pi",
]

logger = logging.getLogger(__name__)

REL_FLOOR = 1e-3
PHASE_WEIGHT_FLOOR = 1e-2
MAX_POSITIONS = 5


def wrap_to_pi(d: np.ndarray) -> np.ndarray:
    """Fold angles (radians) into (-pi, pi]; exact under negation up to the -pi/pi boundary."""
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN/Inf in, NaN out: callers count non-finite apart
        w = d - (2.0 * math.pi) * np.round(d / (2.0 * math.pi))
    return np.where(w <= -math.pi, w + 2.0 * math.pi, w)


class _Side:
    """Dtype, shape and non-finite bookkeeping of one side."""

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
        return [self.rows, *(self.row_shape or ())]


class ComparisonAccumulator:
    """Streams chunks (split along axis 0) of two runners' output into one comparison.

    Memory is bounded by the chunk size: every metric is a running float64 sum or maximum.

    Args:
        output: Output name.
        left: Name of the compared runner.
        right: Name of the reference runner.
        tolerance: Pass criterion.
        wrap_phase: Fold differences into (-pi, pi] (for phase outputs).
        expected_dtype: Dtype both sides must have.
        pair_class: Recorded in the result (see :mod:`parity.tolerances`).
        device: Recorded in the result.
        rel_floor: Denominator floor of the relative error.
        weight_floor: ``w0`` of the phase weighting ``min(1, weight / w0)``.
        peak: The output's peak ``max |ref|`` over all chunks; required when the tolerance
            has ``rtol_peak`` (ValueError otherwise).
    """

    def __init__(
        self,
        output: str,
        left: str,
        right: str,
        tolerance: Tolerance,
        wrap_phase: bool = False,
        expected_dtype: str = "float32",
        *,
        pair_class: str = "",
        device: str = "",
        rel_floor: float = REL_FLOOR,
        weight_floor: float = PHASE_WEIGHT_FLOOR,
        peak: float | None = None,
    ) -> None:
        self.output, self.left, self.right = output, left, right
        self.tolerance = tolerance
        self.peak = float(peak) if tolerance.rtol_peak and peak is not None else None
        try:
            self._floor = tolerance.floor(self.peak)
        except ValueError as exc:
            raise ValueError(f"{output}: {exc}") from None
        self.wrap_phase = wrap_phase
        self.expected_dtype = str(np.dtype(expected_dtype))
        self.pair_class, self.device = pair_class, device
        self.rel_floor, self.weight_floor = rel_floor, weight_floor
        self._l, self._r = _Side(), _Side()
        self._shape_mismatch = False
        self._uncomparable: str | None = None
        self._weighted = False
        self._n_elements = 0
        self._n = 0
        self._n_out = 0  # finite elements outside the tolerance
        self._n_nonfinite = 0  # elements non-finite on either side
        self._max_abs = 0.0
        self._max_rel = 0.0
        self._max_ratio = -1.0
        self._sum_abs = 0.0
        self._sum_sq = 0.0
        self._sum_ref_sq = 0.0
        self._dot = 0.0
        self._sum_left_sq = 0.0
        self._worst: tuple[list[int], float, float] | None = None

    def update(
        self,
        left_chunk: np.ndarray,
        right_chunk: np.ndarray,
        sample_offset: int,
        weight: np.ndarray | None = None,
    ) -> None:
        """Add one chunk of samples ``[sample_offset, sample_offset + len(chunk))``.

        Args:
            left_chunk: Left output rows, axis 0 = samples.
            right_chunk: Right (reference) output rows, same shape.
            sample_offset: Index of the chunk's first sample in the whole batch.
            weight: Reference amplitude of the same shape; weights phase errors (see module).
        """
        a, b = np.asarray(left_chunk), np.asarray(right_chunk)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"{self.output}: chunks are split along axis 0 and need ndim >= 1; "
                f"got shapes {a.shape} and {b.shape} (reshape scalars to (1,))"
            )
        self._l.add(a, sample_offset)
        self._r.add(b, sample_offset)
        if a.shape != b.shape:
            self._shape_mismatch = True
            return
        for side in (a, b):
            if np.iscomplexobj(side) or not np.issubdtype(side.dtype, np.number):
                self._uncomparable = f"values of dtype {side.dtype} cannot be compared as real"
                return
        self._n_elements += a.size
        if a.size == 0:
            return
        self._accumulate(a.astype(np.float64), b.astype(np.float64), sample_offset, weight)

    def _accumulate(
        self, a: np.ndarray, b: np.ndarray, offset: int, weight: np.ndarray | None
    ) -> None:
        finite = np.isfinite(a) & np.isfinite(b)
        self._n_nonfinite += int(finite.size - finite.sum())
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
                self._weighted = True
        elif weight is not None:
            raise ValueError(f"{self.output}: weight applies to phase outputs (wrap_phase=True)")
        ad = np.abs(d)
        ref = np.abs(b0)
        self._n += int(finite.sum())
        self._sum_abs += float(ad.sum())
        self._sum_sq += float(np.square(d).sum())
        self._sum_ref_sq += float(np.square(b0).sum())
        if self.wrap_phase:
            f2 = np.square(factor) * finite
            self._dot += float((f2 * np.cos(d)).sum())
            self._sum_left_sq += float(f2.sum())
        else:
            self._dot += float((a0 * b0).sum())
            self._sum_left_sq += float(np.square(a0).sum())
        if finite.any():
            self._max_abs = max(self._max_abs, float(ad.max()))
            self._max_rel = max(self._max_rel, float((ad / np.maximum(ref, self.rel_floor)).max()))
        bound = self._floor + self.tolerance.rtol * ref
        out = (ad > bound) & finite
        self._n_out += int(out.sum())
        ratio = _ratio(ad, bound, finite)
        flat = int(np.argmax(ratio))
        if finite.ravel()[flat] and float(ratio.ravel()[flat]) > self._max_ratio:
            self._max_ratio = float(ratio.ravel()[flat])
            index = [int(i) for i in np.unravel_index(flat, d.shape)]
            self._worst = (_shift(index, offset), float(a.ravel()[flat]), float(b.ravel()[flat]))

    def finish(self) -> OutputComparison:
        """The comparison so far, with status and failure kinds."""
        failures: list[str] = []
        messages: list[str] = []
        dl, dr, want = self._l.dtype, self._r.dtype, self.expected_dtype
        if dl != want or dr != want:
            failures.append("dtype")
            messages.append(
                f"dtype: expected {want} on both sides, got {dl} (left) and {dr} (right)"
            )
        shape_bad = self._shape_mismatch or not (self._l.consistent and self._r.consistent)
        if shape_bad:
            failures.append("shape")
            messages.append(f"shape: {self._l.shape} (left) != {self._r.shape} (right)")
        if self._uncomparable:
            messages.append(self._uncomparable)
        nonfinite = self._l.nan + self._l.inf + self._r.nan + self._r.inf
        if nonfinite:
            failures.append("nonfinite")
            messages.append(
                f"nonfinite: left {self._l.nan} NaN / {self._l.inf} Inf, "
                f"right {self._r.nan} NaN / {self._r.inf} Inf"
            )
        n_out = self._n_out + self._n_nonfinite
        fraction = n_out / self._n_elements if self._n_elements else None
        if self._n_out and fraction is not None and fraction > self.tolerance.max_fraction_out:
            failures.append("tolerance")
            messages.append(
                f"tolerance: {n_out}/{self._n_elements} elements outside "
                f"atol={self.tolerance.atol:g} + rtol={self.tolerance.rtol:g}*|ref|"
                + (
                    f" + rtol_peak={self.tolerance.rtol_peak:g}*peak({self.peak:.4g})"
                    if self.peak is not None
                    else ""
                )
                + f" (max_abs={self._max_abs:.3g}, worst at {self._worst[0] if self._worst else None})"
            )
        has_values = self._n > 0
        ref_norm, left_norm = math.sqrt(self._sum_ref_sq), math.sqrt(self._sum_left_sq)
        worst_index = self._worst[0] if self._worst else None
        worst_sample = worst_index[0] if worst_index else None
        firsts = self._l.first_nan + self._l.first_inf + self._r.first_nan + self._r.first_inf
        if firsts and (worst_sample is None or self._max_ratio <= 1.0):
            # Within tolerance everywhere else: the non-finite sample is the one worth a map.
            worst_sample = min(p[0] for p in firsts)
        result = OutputComparison(
            output=self.output,
            left=self.left,
            right=self.right,
            tolerance=self.tolerance,
            status="fail" if failures or self._uncomparable else "pass",
            pair_class=self.pair_class,
            device=self.device,
            failures=failures,
            messages=messages,
            expected_dtype=want,
            dtype_left=dl,
            dtype_right=dr,
            shape_left=self._l.shape,
            shape_right=self._r.shape,
            wrap_phase=self.wrap_phase,
            weighted=self._weighted,
            rel_floor=self.rel_floor,
            peak=self.peak,
            n_elements=self._n_elements,
            n_compared=self._n,
            max_abs=self._max_abs if has_values else None,
            max_rel=self._max_rel if has_values else None,
            mean_abs=self._sum_abs / self._n if has_values else None,
            rms=math.sqrt(self._sum_sq / self._n) if has_values else None,
            rel_l2=_safe_div(math.sqrt(self._sum_sq), ref_norm) if has_values else None,
            cosine=self._cosine(left_norm, ref_norm) if has_values else None,
            max_ratio=self._max_ratio if has_values and self._max_ratio >= 0 else None,
            n_out=n_out,
            fraction_out=fraction,
            nan_left=self._l.nan,
            nan_right=self._r.nan,
            inf_left=self._l.inf,
            inf_right=self._r.inf,
            first_nan_left=self._l.first_nan,
            first_nan_right=self._r.first_nan,
            first_inf_left=self._l.first_inf,
            first_inf_right=self._r.first_inf,
            worst_index=worst_index,
            worst_left=self._worst[1] if self._worst else None,
            worst_right=self._worst[2] if self._worst else None,
            worst_sample=worst_sample,
        )
        logger.debug("%s", result.log_line())
        return result

    def _cosine(self, left_norm: float, ref_norm: float) -> float:
        if self.wrap_phase:
            # _dot = sum f^2 cos(d), _sum_left_sq = sum f^2 (weights of the unit phasors).
            return _clip(self._dot / self._sum_left_sq) if self._sum_left_sq else 1.0
        if left_norm == 0.0 and ref_norm == 0.0:
            return 1.0
        if left_norm == 0.0 or ref_norm == 0.0:
            return 0.0
        return _clip(self._dot / (left_norm * ref_norm))


def compare_arrays(
    output: str,
    left_name: str,
    right_name: str,
    a: np.ndarray,
    b: np.ndarray,
    tolerance: Tolerance,
    wrap_phase: bool = False,
    weight: np.ndarray | None = None,
    *,
    pair_class: str = "",
    device: str = "",
    expected_dtype: str = "float32",
    peak: float | None = None,
) -> OutputComparison:
    """Compare two whole arrays in one go (one chunk at sample offset 0).

    See :class:`ComparisonAccumulator` for the arguments and the module for the semantics;
    ``peak`` defaults to the largest finite ``|b|`` (the whole reference is at hand here).
    """
    if tolerance.rtol_peak and peak is None:
        peak = array_peak(b)
    acc = ComparisonAccumulator(
        output,
        left_name,
        right_name,
        tolerance,
        wrap_phase=wrap_phase,
        expected_dtype=expected_dtype,
        pair_class=pair_class,
        device=device,
        peak=peak,
    )
    acc.update(a, b, 0, weight=weight)
    return acc.finish()


def array_peak(values: np.ndarray) -> float:
    """Largest finite ``|value|`` (0 for an empty or all non-finite array): the ``peak`` of
    :attr:`Tolerance.rtol_peak`. Non-finite values are counted as failures elsewhere."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    finite = a[np.isfinite(a)]
    return float(finite.max()) if finite.size else 0.0


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


def _safe_div(num: float, den: float) -> float:
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _clip(x: float) -> float:
    return min(1.0, max(-1.0, x))
