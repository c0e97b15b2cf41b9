"""Compare one output of two runners, chunk by chunk, with bounded memory: what "pass" means.

This is the one rule: ``parity check`` streams its chunks through :class:`ComparisonAccumulator`;
``export verify``, the build's load-back check and a reproducer folder's ``rerun.py`` call
:func:`compare_arrays` on whole arrays; both are told what they compare by a
:class:`ComparedOutput`. Tolerances: :mod:`core.tolerances`.

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

**Angles** (``wrap_phase=True``: the output's ``export.signature.TensorSpec`` says
``wraps``, as phase's does): ``d`` is folded into (-pi, pi] first, so ``a`` and ``a + 2*pi*k``
agree. The cosine similarity is that of the unit phasors ``exp(i*phase)``, i.e. a weighted mean
of ``cos(d)``. Where ``weight`` (the reference side of the spec's ``weighted_by`` output, the
amplitude for phase) is given, each phase error is multiplied by ``min(1, weight / PHASE_WEIGHT_FLOOR)`` with
``PHASE_WEIGHT_FLOOR = 1e-2``: phase is undefined where the amplitude is ~0, so errors there
fade out linearly below 1 % of the sigmoid amplitude's full scale instead of failing the check.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from core.output_comparison import OutputComparison
from core.running_stats import DifferenceStats, SideStats, array_peak
from core.tolerances import Tolerance

__all__ = [
    "PHASE_WEIGHT_FLOOR",
    "REL_FLOOR",
    "ComparedOutput",
    "ComparisonAccumulator",
    "compare_arrays",
]

logger = logging.getLogger(__name__)

REL_FLOOR = 1e-3
PHASE_WEIGHT_FLOOR = 1e-2


@dataclass(frozen=True)
class ComparedOutput:
    """Which output of which pair is compared, and the rule it is judged by.

    Attributes:
        output: Output name.
        left: Name of the compared runner.
        right: Name of the reference runner.
        tolerance: Pass criterion.
        wrap_phase: Fold differences into (-pi, pi] (for an output whose spec ``wraps``).
        expected_dtype: Dtype both sides must have.
        pair_class: Recorded in the result (see :mod:`core.tolerances`).
        device: Recorded in the result.
    """

    output: str
    left: str
    right: str
    tolerance: Tolerance
    wrap_phase: bool = False
    expected_dtype: str = "float32"
    pair_class: str = ""
    device: str = ""


class ComparisonAccumulator:
    """Streams chunks (split along axis 0) of two runners' output into one comparison.

    Memory is bounded by the chunk size: every metric is a running float64 sum or maximum.
    Relative errors use the denominator floor :data:`REL_FLOOR`; phase errors are weighted by
    ``min(1, weight / PHASE_WEIGHT_FLOOR)`` (module docstring).

    Args:
        compared: What is compared and by which rule.
        peak: The output's peak ``max |ref|`` over all chunks; required when the tolerance
            has ``rtol_peak`` (ValueError otherwise).
    """

    def __init__(self, compared: ComparedOutput, peak: float | None = None) -> None:
        tolerance = compared.tolerance
        self.compared = compared
        self.output, self.left, self.right = compared.output, compared.left, compared.right
        self.tolerance = tolerance
        self.peak = float(peak) if tolerance.rtol_peak and peak is not None else None
        try:
            self._floor = tolerance.floor(self.peak)
        except ValueError as exc:
            raise ValueError(f"{compared.output}: {exc}") from None
        self.wrap_phase = compared.wrap_phase
        self.expected_dtype = str(np.dtype(compared.expected_dtype))
        self.pair_class, self.device = compared.pair_class, compared.device
        self._l, self._r = SideStats(), SideStats()
        self._shape_mismatch = False
        self._uncomparable: str | None = None
        self._n_elements = 0
        self._values = DifferenceStats(
            compared.output,
            self._floor,
            tolerance.rtol,
            REL_FLOOR,
            compared.wrap_phase,
            PHASE_WEIGHT_FLOOR,
        )

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
        self._values.add(a.astype(np.float64), b.astype(np.float64), sample_offset, weight)

    def finish(self) -> OutputComparison:
        """The comparison so far, with status and failure kinds."""
        v, want = self._values, self.expected_dtype
        failures, messages = self._failures()
        has_values = v.n > 0
        worst_index = v.worst[0] if v.worst else None
        worst_sample = worst_index[0] if worst_index else None
        firsts = self._l.first_nan + self._l.first_inf + self._r.first_nan + self._r.first_inf
        if firsts and (worst_sample is None or v.max_ratio <= 1.0):
            # Within tolerance everywhere else: the non-finite sample is the one worth a map.
            worst_sample = min(p[0] for p in firsts)
        n_out = v.n_out + v.n_nonfinite
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
            dtype_left=self._l.dtype,
            dtype_right=self._r.dtype,
            shape_left=self._l.shape,
            shape_right=self._r.shape,
            wrap_phase=self.wrap_phase,
            weighted=v.weighted,
            rel_floor=REL_FLOOR,
            peak=self.peak,
            n_elements=self._n_elements,
            n_compared=v.n,
            max_abs=v.max_abs if has_values else None,
            max_rel=v.max_rel if has_values else None,
            mean_abs=v.sum_abs / v.n if has_values else None,
            rms=math.sqrt(v.sum_sq / v.n) if has_values else None,
            rel_l2=v.rel_l2() if has_values else None,
            cosine=v.cosine() if has_values else None,
            max_ratio=v.max_ratio if has_values and v.max_ratio >= 0 else None,
            n_out=n_out,
            fraction_out=n_out / self._n_elements if self._n_elements else None,
            nan_left=self._l.nan,
            nan_right=self._r.nan,
            inf_left=self._l.inf,
            inf_right=self._r.inf,
            first_nan_left=self._l.first_nan,
            first_nan_right=self._r.first_nan,
            first_inf_left=self._l.first_inf,
            first_inf_right=self._r.first_inf,
            worst_index=worst_index,
            worst_left=v.worst[1] if v.worst else None,
            worst_right=v.worst[2] if v.worst else None,
            worst_sample=worst_sample,
        )
        logger.debug("%s", result.log_line())
        return result

    def _failures(self) -> tuple[list[str], list[str]]:
        """Failure kinds in check order, and one message per failure (or uncomparable values)."""
        failures: list[str] = []
        messages: list[str] = []
        v, t = self._values, self.tolerance
        dl, dr, want = self._l.dtype, self._r.dtype, self.expected_dtype
        if dl != want or dr != want:
            failures.append("dtype")
            messages.append(
                f"dtype: expected {want} on both sides, got {dl} (left) and {dr} (right)"
            )
        if self._shape_mismatch or not (self._l.consistent and self._r.consistent):
            failures.append("shape")
            messages.append(f"shape: {self._l.shape} (left) != {self._r.shape} (right)")
        if self._uncomparable:
            messages.append(self._uncomparable)
        if self._l.nan + self._l.inf + self._r.nan + self._r.inf:
            failures.append("nonfinite")
            messages.append(
                f"nonfinite: left {self._l.nan} NaN / {self._l.inf} Inf, "
                f"right {self._r.nan} NaN / {self._r.inf} Inf"
            )
        n_out = v.n_out + v.n_nonfinite
        if v.n_out and self._n_elements and n_out / self._n_elements > t.max_fraction_out:
            peak = (
                f" + rtol_peak={t.rtol_peak:g}*peak({self.peak:.4g})"
                if self.peak is not None
                else ""
            )
            failures.append("tolerance")
            messages.append(
                f"tolerance: {n_out}/{self._n_elements} elements outside "
                f"atol={t.atol:g} + rtol={t.rtol:g}*|ref|{peak} "
                f"(max_abs={v.max_abs:.3g}, worst at {v.worst[0] if v.worst else None})"
            )
        return failures, messages


def compare_arrays(
    compared: ComparedOutput,
    a: np.ndarray,
    b: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    peak: float | None = None,
) -> OutputComparison:
    """Compare two whole arrays in one go (one chunk at sample offset 0).

    ``a`` is the left side, ``b`` the reference; ``weight`` and ``peak`` are as for
    :meth:`ComparisonAccumulator.update` and :class:`ComparisonAccumulator` (module docstring
    for the semantics); ``peak`` defaults to the largest finite ``|b|`` (the whole reference is
    at hand here).
    """
    if compared.tolerance.rtol_peak and peak is None:
        peak = array_peak(b)
    acc = ComparisonAccumulator(compared, peak)
    acc.update(a, b, 0, weight=weight)
    return acc.finish()
