"""Tolerances relative to an output's peak (``rtol_peak``) and references that carry their own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.compare import ComparedOutput, ComparisonAccumulator, compare_arrays
from core.output_comparison import OutputComparison
from core.tolerances import DEVICES, OUTPUTS, PAIR_CLASSES, Tolerance, ToleranceTable
from parity.calibrate import calibrate
from parity.check import CheckOptions, run_check

PEAKY = Tolerance(0.0, 0.0, rtol_peak=2e-6)


def _peaked(error: float) -> tuple[np.ndarray, np.ndarray]:
    """A reference peaking at 1000 with mostly small values, and a copy off by ``error``."""
    ref = np.full((2, 1, 4, 4), 0.5, dtype=np.float32)
    ref[1, 0, 3, 3] = 1000.0
    left = ref.copy()
    left[0, 0, 0, 0] += np.float32(error)  # at a small value: only the peak term can cover it
    return left, ref


def test_default_table_judges_only_pred_amplitude_by_its_peak() -> None:
    table = ToleranceTable.default()
    for out in OUTPUTS:
        for pc in PAIR_CLASSES:
            for dev in DEVICES:
                peak_term = table.lookup(out, pc, dev).rtol_peak
                assert (peak_term > 0) == (out == "pred_amplitude"), (out, pc, dev)
    assert Tolerance(1e-6, 0.0) == Tolerance(1e-6, 0.0, 0.0, 0.0)


def test_error_within_two_millionths_of_the_peak_passes_anywhere_in_the_output() -> None:
    left, ref = _peaked(1.5e-3)
    c = compare_arrays(ComparedOutput("amplitude", "eager", "tf-reference", PEAKY), left, ref)
    assert c.passed and c.peak == 1000.0
    assert c.max_ratio == pytest.approx(1.5e-3 / 2e-3, rel=1e-3)
    assert "rtol_peak=2e-06" in c.log_line()


def test_error_beyond_the_peak_bound_fails_and_says_which_peak() -> None:
    left, ref = _peaked(3e-3)
    c = compare_arrays(ComparedOutput("amplitude", "eager", "tf-reference", PEAKY), left, ref)
    assert not c.passed and c.failures == ["tolerance"]
    assert "rtol_peak=2e-06*peak(1000)" in c.messages[0]


def test_streamed_chunks_use_the_peak_of_the_whole_output() -> None:
    left, ref = _peaked(1.5e-3)
    acc = ComparisonAccumulator(
        ComparedOutput("amplitude", "eager", "tf-reference", PEAKY), peak=1000.0
    )
    acc.update(left[:1], ref[:1], 0)  # this chunk alone peaks at 0.5
    acc.update(left[1:], ref[1:], 1)
    assert acc.finish().passed


def test_peak_term_without_a_peak_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="rtol_peak.*peak"):
        ComparisonAccumulator(ComparedOutput("amplitude", "eager", "tf-reference", PEAKY))


def test_rtol_peak_merges_from_files_and_older_records_still_load(tmp_path: Path) -> None:
    path = tmp_path / "tol.json"
    path.write_text(
        json.dumps({"tolerances": {"amplitude": {"vs-reference": {"cpu": {"rtol_peak": 2e-6}}}}})
    )
    table = ToleranceTable.load(path)
    assert table.lookup("amplitude", "vs-reference", "cpu") == Tolerance(1e-6, 0.0, rtol_peak=2e-6)
    assert ToleranceTable.load(table.save(tmp_path / "again.json")) == table
    old = compare_arrays(
        ComparedOutput("phase", "a", "b", Tolerance(1e-6, 0.0)), *_peaked(0.0)
    ).to_dict()
    old["tolerance"].pop("rtol_peak")
    old.pop("peak")  # a report written before rtol_peak existed
    assert OutputComparison.from_dict(old).tolerance == Tolerance(1e-6, 0.0)


def test_calibration_keeps_the_peak_relative_shape() -> None:
    left, ref = _peaked(1e-3)
    c = compare_arrays(
        ComparedOutput(
            "amplitude", "eager", "onnxruntime[cpu]", PEAKY, pair_class="torch-vs-artifact"
        ),
        left,
        ref,
    )
    c.device = "cpu"
    table, _ = calibrate([c], margin=10.0)
    tol = table.lookup("amplitude", "torch-vs-artifact", "cpu")
    assert tol.atol == 0.0 and tol.rtol_peak == pytest.approx(10 * 1e-3 / 1000.0, rel=1e-3)


def _with_carried_tolerances(artifacts: Path, tolerances: dict) -> None:
    side = artifacts / "reference.json"
    provenance = json.loads(side.read_text())
    provenance["tolerances"] = tolerances
    side.write_text(json.dumps(provenance))


def test_reference_carries_its_own_tolerances_and_the_user_file_wins(
    artifacts: Path, tmp_path: Path
) -> None:
    carried = {
        "tolerances": {"amplitude": {"vs-reference": {"cpu": {"atol": 0, "rtol_peak": 3e-6}}}}
    }
    _with_carried_tolerances(artifacts, carried)
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    with np.load(artifacts / "reference.npz") as ref:
        peak = float(np.abs(ref["amplitude"]).max())
    amp = [c for c in report.comparisons if c.output == "amplitude" and c.right == "tf-reference"]
    assert amp and all(c.tolerance == Tolerance(0.0, 0.0, rtol_peak=3e-6) for c in amp)
    assert all(c.peak == pytest.approx(peak) for c in amp)
    phase = [c for c in report.comparisons if c.output == "phase"]
    assert all(c.tolerance == Tolerance(4e-6, 0.0) and c.peak is None for c in phase)
    user = tmp_path / "tol.json"
    user.write_text(
        json.dumps({"tolerances": {"amplitude": {"vs-reference": {"cpu": {"atol": 5e-6}}}}})
    )
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu", tolerances=user))
    amp = [c for c in report.comparisons if c.output == "amplitude" and c.right == "tf-reference"]
    assert all(c.tolerance == Tolerance(5e-6, 0.0, rtol_peak=3e-6) for c in amp)


def test_invalid_carried_tolerances_are_a_reference_error(artifacts: Path) -> None:
    from export.errors import ReferenceFormatError

    _with_carried_tolerances(artifacts, {"tolerances": {"amplitude": {"vs-tf": {}}}})
    with pytest.raises(ReferenceFormatError, match="tolerances.*vs-tf"):
        run_check(CheckOptions(artifacts=artifacts, device="cpu"))


def test_without_a_reference_the_peak_comes_from_eager_over_every_chunk(
    artifacts: Path, tmp_path: Path
) -> None:
    import torch

    from ptycho_torch.checkpoint import load_model

    (artifacts / "reference.npz").unlink()
    (artifacts / "reference.json").unlink()
    rng = np.random.default_rng(3)
    diffraction = (rng.random((5, 1, 64, 64)) * 30).astype(np.float32)
    diffraction[4] *= 3  # the last, padded chunk holds the brightest sample
    np.savez(tmp_path / "big.npz", diffraction=diffraction)
    tol = tmp_path / "tol.json"
    tol.write_text(
        json.dumps(
            {"tolerances": {"amplitude": {"torch-vs-artifact": {"cpu": {"rtol_peak": 1e-6}}}}}
        )
    )
    report = run_check(
        CheckOptions(artifacts=artifacts, inputs=tmp_path / "big.npz", device="cpu", tolerances=tol)
    )
    manifest = json.loads((artifacts / "manifest.json").read_text())
    with torch.inference_mode():
        amplitude, _ = load_model(manifest["checkpoint"]["path"]).predict(
            torch.from_numpy(diffraction)
        )
    peak = float(amplitude.abs().max())
    amp = [c for c in report.comparisons if c.output == "amplitude"]
    assert report.verdict == "pass" and len(amp) == 3
    assert all(c.peak == pytest.approx(peak, rel=1e-6) for c in amp)
