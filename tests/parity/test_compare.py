"""Comparison semantics: dtype/shape first, value metrics, wrap-awareness, chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.compare import PHASE_WEIGHT_FLOOR, ComparedOutput, ComparisonAccumulator, compare_arrays
from core.output_comparison import OutputComparison
from core.running_stats import wrap_to_pi
from core.tolerances import Tolerance

TOL = Tolerance(atol=1e-6, rtol=0.0)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
FINITE = st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_infinity=False)
PHASES = st.floats(-3.0, 3.0, width=32)


def _pair(draw, elements=FINITE):
    shape = draw(SHAPES)
    a = draw(hnp.arrays(np.float32, shape, elements=elements))
    b = draw(hnp.arrays(np.float32, shape, elements=elements))
    return a, b


pairs = st.composite(_pair)


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(np.float32, SHAPES, elements=FINITE))
def test_identical_arrays_have_zero_error_and_pass(a):
    c = compare_arrays(ComparedOutput("amplitude", "eager", "tf-reference", TOL), a, a.copy())
    assert c.status == "pass" and c.failures == []
    assert c.max_abs == c.max_rel == c.mean_abs == c.rms == c.rel_l2 == 0.0
    assert c.n_out == 0 and c.fraction_out == 0.0
    assert c.cosine == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(ab=pairs())
def test_symmetric_metrics_do_not_depend_on_side(ab):
    a, b = ab
    x = compare_arrays(ComparedOutput("amplitude", "l", "r", TOL), a, b)
    y = compare_arrays(ComparedOutput("amplitude", "r", "l", TOL), b, a)
    assert x.max_abs == y.max_abs
    assert x.mean_abs == pytest.approx(y.mean_abs, rel=1e-12, abs=1e-300)
    assert x.rms == pytest.approx(y.rms, rel=1e-12, abs=1e-300)
    assert x.cosine == pytest.approx(y.cosine, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(np.float32, (2, 1, 3, 3), elements=PHASES),
    k=st.integers(-3, 3),
)
def test_phase_shifted_by_whole_turns_agrees(a, k):
    b = (a.astype(np.float64) + 2 * np.pi * k).astype(np.float32)
    c = compare_arrays(
        ComparedOutput("phase", "eager", "tf-reference", Tolerance(1e-5, 0.0), wrap_phase=True),
        a,
        b,
    )
    # Only float32 rounding of a + 2*pi*k remains.
    assert c.max_abs < 4e-6
    assert c.status == "pass"
    assert c.cosine == pytest.approx(1.0, abs=1e-9)


def test_phase_across_the_branch_cut_is_a_small_error():
    eps = 1e-4
    a = np.full((1, 1, 2, 2), np.pi - eps, np.float32)
    b = np.full((1, 1, 2, 2), -np.pi + eps, np.float32)
    wrapped = compare_arrays(
        ComparedOutput("phase", "l", "r", Tolerance(1e-3, 0.0), wrap_phase=True), a, b
    )
    raw = compare_arrays(ComparedOutput("phase", "l", "r", Tolerance(1e-3, 0.0)), a, b)
    assert wrapped.max_abs == pytest.approx(2 * eps, rel=1e-2)
    assert wrapped.passed
    assert raw.max_abs == pytest.approx(2 * np.pi - 2 * eps, rel=1e-4)
    assert not raw.passed


def test_wrap_to_pi_range_is_half_open():
    w = wrap_to_pi(np.array([np.pi, -np.pi, 3 * np.pi, 0.5, -7.0]))
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    assert w[0] == w[1] == pytest.approx(np.pi)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 9),
    wrap=st.booleans(),
)
def test_chunked_accumulation_equals_one_shot(data, n, wrap):
    elements = PHASES if wrap else FINITE
    a = data.draw(hnp.arrays(np.float32, (n, 2, 3), elements=elements))
    b = data.draw(hnp.arrays(np.float32, (n, 2, 3), elements=elements))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    tol = Tolerance(1e-2, 1e-3)
    whole = compare_arrays(
        ComparedOutput("phase" if wrap else "amplitude", "l", "r", tol, wrap_phase=wrap), a, b
    )
    acc = ComparisonAccumulator(ComparedOutput(whole.output, "l", "r", tol, wrap_phase=wrap))
    for start, stop in zip([0, *cuts], [*cuts, n]):
        if stop > start:
            acc.update(a[start:stop], b[start:stop], sample_offset=start)
    parts = acc.finish()
    exact = ("status", "failures", "shape_left", "n_out", "max_abs", "max_rel", "max_ratio")
    for name in (*exact, "worst_index", "worst_sample", "worst_left", "worst_right"):
        assert getattr(parts, name) == getattr(whole, name), name
    for name in ("mean_abs", "rms", "rel_l2", "cosine"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name), rel=1e-9, abs=1e-12)


def test_nan_is_reported_with_its_position_including_sample_offset():
    acc = ComparisonAccumulator(ComparedOutput("amplitude", "onnxruntime[cpu]", "eager", TOL))
    good = np.zeros((2, 1, 4, 4), np.float32)
    bad = good.copy()
    bad[1, 0, 2, 3] = np.nan
    bad[0, 0, 0, 1] = np.inf
    acc.update(good, good, sample_offset=0)
    acc.update(bad, good, sample_offset=2)
    c = acc.finish()
    assert c.status == "fail" and "nonfinite" in c.failures
    assert "tolerance" not in c.failures
    assert c.nan_left == 1 and c.first_nan_left == [[3, 0, 2, 3]]
    assert c.inf_left == 1 and c.first_inf_left == [[2, 0, 0, 1]]
    assert c.nan_right == c.inf_right == 0
    assert c.n_out == 2 and c.n_compared == 4 * 16 - 2
    assert c.max_abs == 0.0  # finite elements agree; metrics stay finite
    assert c.worst_sample == 2


def test_rejects_float64_output_as_dtype_failure_but_still_compares_values():
    a = np.linspace(0, 1, 16, dtype=np.float64).reshape(1, 1, 4, 4)
    c = compare_arrays(
        ComparedOutput("amplitude", "eager", "tf-reference", TOL), a, a.astype(np.float32)
    )
    assert c.failures == ["dtype"]
    assert "float64" in c.messages[0] and "float32" in c.messages[0]
    assert c.dtype_left == "float64" and c.dtype_right == "float32"
    assert c.max_abs is not None and c.max_abs < 1e-7


def test_shape_mismatch_is_a_shape_failure_without_values():
    a = np.zeros((2, 1, 4, 4), np.float32)
    b = np.zeros((2, 1, 4, 5), np.float32)
    c = compare_arrays(ComparedOutput("amplitude", "l", "r", TOL), a, b)
    assert c.failures == ["shape"]
    assert c.shape_left == [2, 1, 4, 4] and c.shape_right == [2, 1, 4, 5]
    assert c.max_abs is None and c.status == "fail"


def test_chunks_with_changing_trailing_shape_are_a_shape_failure():
    acc = ComparisonAccumulator(ComparedOutput("amplitude", "l", "r", TOL))
    acc.update(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32), 0)
    acc.update(np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32), 1)
    assert acc.finish().failures == ["shape"]


def test_out_of_tolerance_counts_and_worst_element():
    a = np.zeros((3, 1, 2, 2), np.float32)
    b = a.copy()
    b[2, 0, 1, 0] = 1e-3
    b[0, 0, 0, 0] = 5e-6
    c = compare_arrays(ComparedOutput("amplitude", "l", "r", TOL), a, b)
    assert c.failures == ["tolerance"]
    assert c.n_out == 2 and c.fraction_out == pytest.approx(2 / 12)
    assert c.worst_index == [2, 0, 1, 0] and c.worst_sample == 2
    assert c.worst_left == 0.0 and c.worst_right == pytest.approx(1e-3)
    loose = compare_arrays(
        ComparedOutput("amplitude", "l", "r", Tolerance(1e-6, 0.0, max_fraction_out=0.2)), a, b
    )
    assert loose.passed


def test_relative_tolerance_scales_with_reference():
    ref = np.full((1, 4), 1000.0, np.float32)
    a = ref + np.float32(0.005)
    assert compare_arrays(
        ComparedOutput("pred_amplitude", "l", "r", Tolerance(1e-4, 1e-5)), a, ref
    ).passed
    assert not compare_arrays(
        ComparedOutput("pred_amplitude", "l", "r", Tolerance(1e-4, 0.0)), a, ref
    ).passed


def test_weight_suppresses_phase_error_where_amplitude_vanishes():
    ref = np.zeros((1, 1, 2, 2), np.float32)
    a = ref.copy()
    a[0, 0, 0, 0] = 1.0  # large phase error where the amplitude is ~0
    amp = np.ones_like(ref)
    amp[0, 0, 0, 0] = 1e-8
    tol = Tolerance(1e-5, 0.0)
    assert not compare_arrays(
        ComparedOutput("phase", "l", "r", tol, wrap_phase=True), a, ref
    ).passed
    c = compare_arrays(ComparedOutput("phase", "l", "r", tol, wrap_phase=True), a, ref, weight=amp)
    assert c.passed and c.weighted
    assert c.max_abs == pytest.approx(1e-8 / PHASE_WEIGHT_FLOOR)
    amp[0, 0, 0, 0] = 0.5  # where the amplitude is real the error still counts in full
    assert (
        compare_arrays(
            ComparedOutput("phase", "l", "r", tol, wrap_phase=True), a, ref, weight=amp
        ).max_abs
        == 1.0
    )


def test_cosine_of_opposite_vectors_is_minus_one():
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    assert compare_arrays(
        ComparedOutput("amplitude", "l", "r", TOL), a, -a
    ).cosine == pytest.approx(-1.0)


def test_result_round_trips_through_dict_with_nonfinite_metrics():
    a = np.zeros((1, 3), np.float32)
    c = compare_arrays(ComparedOutput("pred_amplitude", "l", "r", Tolerance(0.0, 0.0)), a + 1, a)
    assert math.isinf(c.rel_l2) and math.isinf(c.max_ratio)
    assert OutputComparison.from_dict(c.to_dict()) == c


def test_log_line_reads_like_polygraphy():
    a = np.zeros((1, 3), np.float32)
    c = compare_arrays(ComparedOutput("amplitude", "eager", "onnxruntime[cpu]", TOL), a, a)
    assert c.log_line() == "amplitude | eager vs onnxruntime[cpu] | PASSED max_abs=0 atol=1e-06"
