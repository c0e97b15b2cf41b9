"""Default tolerance table, override files, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.compare import ComparedOutput, compare_arrays
from core.tolerances import DEVICES, PAIR_CLASSES, Tolerance, ToleranceTable
from export.signature import OUTPUT_NAMES as OUTPUTS
from parity.calibrate import calibrate
from parity.pairs import classify_pair


def test_defaults_cover_every_output_pair_class_and_device():
    table = ToleranceTable.default()
    for out in OUTPUTS:
        for pc in PAIR_CLASSES:
            for dev in DEVICES:
                assert isinstance(table.lookup(out, pc, dev), Tolerance)


def test_default_values_follow_the_documented_policy():
    table = ToleranceTable.default()
    assert table.lookup("amplitude", "torch-vs-artifact", "cpu") == Tolerance(1e-6, 0.0)
    assert table.lookup("phase", "torch-vs-artifact", "cuda") == Tolerance(1e-5, 0.0)
    assert table.lookup("amplitude", "torch-vs-artifact", "cuda:1").atol == 1e-5
    assert table.lookup("pred_amplitude", "vs-reference", "cpu").rtol_peak == 2e-6
    assert table.lookup("pred_amplitude", "torch-vs-artifact", "cuda").rtol_peak == 1e-5
    for out in OUTPUTS:  # GPU never tighter than CPU, reference never tighter than artifacts
        for pc in PAIR_CLASSES:
            assert table.lookup(out, pc, "cuda").atol >= table.lookup(out, pc, "cpu").atol
        for dev in DEVICES:
            ref, art = (
                table.lookup(out, pc, dev).atol for pc in ("vs-reference", "torch-vs-artifact")
            )
            assert ref >= art


def test_lookup_of_unknown_names_lists_the_allowed_ones():
    table = ToleranceTable.default()
    with pytest.raises(ValueError, match="known.*amplitude"):
        table.lookup("intensity", "vs-reference", "cpu")
    with pytest.raises(ValueError, match="allowed.*vs-reference"):
        table.lookup("phase", "vs-tf", "cpu")
    with pytest.raises(ValueError, match="allowed.*cuda"):
        table.lookup("phase", "vs-reference", "tpu")


def test_partial_override_merges_onto_defaults(tmp_path):
    path = tmp_path / "tol.json"
    path.write_text(
        json.dumps({"tolerances": {"phase": {"vs-reference": {"cuda": {"atol": 5e-5}}}}})
    )
    table = ToleranceTable.load(path)
    assert table.lookup("phase", "vs-reference", "cuda") == Tolerance(5e-5, 0.0)
    default = ToleranceTable.default()
    assert table.lookup("phase", "vs-reference", "cpu") == default.lookup(
        "phase", "vs-reference", "cpu"
    )
    assert table.lookup("amplitude", "vs-reference", "cuda") == default.lookup(
        "amplitude", "vs-reference", "cuda"
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"tolerance": {}}, "'tolerance'"),
        ({"tolerances": {"amp": {}}}, "'amp'"),
        ({"tolerances": {"phase": {"reference": {}}}}, "'reference'"),
        ({"tolerances": {"phase": {"vs-reference": {"gpu": {}}}}}, "'gpu'"),
        ({"tolerances": {"phase": {"vs-reference": {"cpu": {"abs": 1}}}}}, "'abs'"),
    ],
)
def test_unknown_override_key_is_a_clear_error(tmp_path, data, key):
    path = tmp_path / "tol.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"unknown.*{key}.*allowed") as info:
        ToleranceTable.load(path)
    assert str(path) in str(info.value)


def test_negative_tolerance_is_rejected():
    with pytest.raises(ValueError, match="atol"):
        Tolerance(-1.0, 0.0)


def test_save_load_round_trip(tmp_path):
    table = ToleranceTable.default()
    table.entries["amplitude"]["vs-reference"]["cpu"] = Tolerance(3e-6, 1e-7, 0.001)
    table.notes = ["hand-tuned"]
    loaded = ToleranceTable.load(table.save(tmp_path / "t.json"))
    assert loaded == table


def test_classify_pair():
    assert classify_pair("eager", "tf-reference") == "vs-reference"
    assert classify_pair("onnxruntime", "eager") == "torch-vs-artifact"


def _measured(noise: float, output: str = "amplitude", device: str = "cpu"):
    rng = np.random.default_rng(0)
    ref = rng.random((2, 1, 4, 4), dtype=np.float32)
    a = ref + np.float32(noise)
    tol = ToleranceTable.default().lookup(output, "torch-vs-artifact", device)
    return compare_arrays(
        ComparedOutput(
            output, "eager", "onnxruntime[cpu]", tol, pair_class="torch-vs-artifact", device=device
        ),
        a,
        ref,
    )


def test_calibrate_writes_figures_behind_each_value(tmp_path):
    comparisons = [_measured(2e-7), _measured(4e-7), _measured(3e-7, output="pred_amplitude")]
    table, notes = calibrate(comparisons, margin=10.0)
    tol = table.lookup("amplitude", "torch-vs-artifact", "cpu")
    worst = max(c.max_abs for c in comparisons[:2])
    assert tol.atol == pytest.approx(10 * worst) and tol.rtol == 0.0
    rel = table.lookup("pred_amplitude", "torch-vs-artifact", "cpu")
    default_rel = ToleranceTable.default().lookup("pred_amplitude", "torch-vs-artifact", "cpu")
    assert rel.rtol / rel.atol == pytest.approx(
        default_rel.rtol / default_rel.atol
    )  # keeps its shape
    assert table.lookup("phase", "vs-reference", "cuda") == ToleranceTable.default().lookup(
        "phase", "vs-reference", "cuda"
    )
    assert any("amplitude/torch-vs-artifact/cpu" in n for n in notes)
    data = json.loads(table.save(tmp_path / "calibrated.json").read_text())
    figures = data["measured"]["amplitude"]["torch-vs-artifact"]["cpu"]
    assert figures["max_abs"] == pytest.approx(worst)
    assert figures["n_comparisons"] == 2 and figures["margin"] == 10.0
    assert figures["pairs"] == ["eager vs onnxruntime[cpu]"]
    assert data["tolerances"]["amplitude"]["torch-vs-artifact"]["cpu"]["atol"] == pytest.approx(
        10 * worst
    )
    assert ToleranceTable.load(tmp_path / "calibrated.json").measured == data["measured"]


def test_calibrate_skips_broken_comparisons_and_never_returns_zero():
    identical = _measured(0.0)
    broken = _measured(1e-7)
    broken.failures = ["nonfinite"]
    table, notes = calibrate([identical, broken])
    assert table.lookup("amplitude", "torch-vs-artifact", "cpu").atol > 0
    assert any("skipped" in n for n in notes)
