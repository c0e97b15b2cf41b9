"""The parity check end to end, and fault injection: each fault fails the right way."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from export.errors import ArtifactsChangedError, StaleReferenceError
from export.manifest import sha256_file
from parity import runners as runners_module
from parity.check import CheckOptions, run_check
from parity.errors import EnvironmentUnavailable
from parity.results import ParityReport
from tests.conftest import export_cli as _parity


def _rehash(artifacts: Path, name: str) -> None:
    """Update the manifest after tampering, as a buggy exporter would have written it."""
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = sha256_file(artifacts / name)
    (artifacts / "manifest.json").write_text(json.dumps(manifest))


def _failed(report: ParityReport) -> set[tuple[str, str, str]]:
    return {(c.output, c.left, c.right) for c in report.comparisons if c.status != "pass"}


@pytest.mark.error_maps
def test_clean_artifacts_pass_every_pair_and_write_all_reports(artifacts: Path) -> None:
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    assert report.verdict == "pass" and report.exit_code == 0
    pairs = {(c.left, c.right) for c in report.comparisons}
    assert ("eager[cpu]", "onnxruntime[cpu]") in pairs
    assert ("onnxruntime[cpu]", "tf-reference") in pairs
    assert len(report.comparisons) == 2 * 7  # 3 artifacts vs eager + 4 runners vs reference
    for c in report.comparisons:
        assert c.max_abs is not None and c.max_abs <= 1e-6, c.log_line()
    out = artifacts / "report"
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert (out / name).is_file()
    loaded = ParityReport.load_json(out / "report.json")
    assert loaded.verdict == "pass"
    # a map per runner and output against the reference, drawn for real (width in the header)
    assert {(m.left, m.output) for m in loaded.error_maps} == {
        (c.left, c.output) for c in report.comparisons if c.right == "tf-reference"
    }
    for error_map in loaded.error_maps:
        png = (out / error_map.png).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 100
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(report.comparisons)
    onnx_runner = next(r for r in report.runners if r.kind == "onnxruntime")
    assert onnx_runner.providers == ["CPUExecutionProvider"] and onnx_runner.actual_device == "cpu"


def test_perturbed_onnx_weights_fail_naming_the_output(artifacts: Path) -> None:
    model = onnx.load(str(artifacts / "model.onnx"))
    # the last conv of the phase decoder's centre path feeds only the phase output
    target = next(
        i
        for i in model.graph.initializer
        if "phase_decoder" in i.name and "centre_conv.bias" in i.name
    )
    values = numpy_helper.to_array(target) + np.float32(1e-2)
    target.CopyFrom(numpy_helper.from_array(values.astype(np.float32), target.name))
    onnx.save(model, str(artifacts / "model.onnx"))
    _rehash(artifacts, "model.onnx")
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    assert report.exit_code == 1
    assert _failed(report) == {
        ("phase", "eager[cpu]", "onnxruntime[cpu]"),
        ("phase", "onnxruntime[cpu]", "tf-reference"),
    }


def test_output_cast_to_float64_is_a_dtype_failure(artifacts: Path) -> None:
    model = onnx.load(str(artifacts / "model.onnx"))
    graph = model.graph
    out = graph.output[0]  # amplitude
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == out.name:
                node.output[i] = "amplitude_f32"
    graph.node.append(
        helper.make_node("Cast", ["amplitude_f32"], [out.name], to=onnx.TensorProto.DOUBLE)
    )
    out.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    onnx.save(model, str(artifacts / "model.onnx"))
    _rehash(artifacts, "model.onnx")
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    failed = [c for c in report.comparisons if c.status != "pass"]
    assert {(c.output, c.left, c.right) for c in failed} == {
        ("amplitude", "eager[cpu]", "onnxruntime[cpu]"),
        ("amplitude", "onnxruntime[cpu]", "tf-reference"),
    }
    assert all("dtype" in c.failures for c in failed)


def test_nan_in_one_backend_is_reported_with_its_position(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = runners_module.ExportedProgramRunner._infer

    def with_nan(self, feed):  # type: ignore[no-untyped-def]
        outputs = original(self, feed)
        outputs["amplitude"] = outputs["amplitude"].copy()
        outputs["amplitude"][1, 0, 5, 7] = np.nan
        return outputs

    monkeypatch.setattr(runners_module.ExportedProgramRunner, "_infer", with_nan)
    report = run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    failed = [c for c in report.comparisons if c.status != "pass"]
    assert {(c.output, c.left) for c in failed} == {
        ("amplitude", "eager[cpu]"),
        ("amplitude", "pt2[cpu]"),
    }
    text = json.dumps([c.to_dict() for c in failed])
    assert "nonfinite" in text and "[1, 0, 5, 7]" in text


def test_asking_for_cuda_without_it_is_an_environment_failure(artifacts: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EnvironmentUnavailable, match="cuda"):
        run_check(CheckOptions(artifacts=artifacts, device="cuda"))
    # the command line's exit 3: a row of tests/export/test_exit_codes.py


def test_reference_from_other_weights_is_stale(artifacts: Path) -> None:
    side = artifacts / "reference.json"
    provenance = json.loads(side.read_text())
    provenance["weights_sha256"] = "0" * 64
    side.write_text(json.dumps(provenance))
    with pytest.raises(StaleReferenceError, match="weights_sha256"):
        run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    proc = _parity("check", "--artifacts", str(artifacts))
    assert proc.returncode == 4 and "stale" in proc.stderr


def test_artifact_changed_after_build_is_refused(artifacts: Path) -> None:
    with (artifacts / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactsChangedError, match="changed since the build.*model.onnx") as err:
        run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    assert err.value.exit_code == 4


def test_many_samples_stream_in_chunks(
    artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5-sample set through batch-2 artifacts: 3 chunks, the last one padded; positions global."""
    import torch

    from parity.reference import save_reference
    from ptycho_torch.checkpoint import load_model, model_state_sha256
    from ptycho_torch.digest import arrays_sha256

    manifest = json.loads((artifacts / "manifest.json").read_text())
    model = load_model(manifest["checkpoint"]["path"])
    rng = np.random.default_rng(7)
    feed = {"diffraction": (rng.random((5, 1, 64, 64)) * 30).astype(np.float32)}
    np.savez(tmp_path / "big.npz", **feed)
    with torch.inference_mode():
        amplitude, phase = model.predict(torch.from_numpy(feed["diffraction"]))
    provenance = {
        "generator": "eager-pytorch (test)",
        "head": "object",
        "signature": manifest["signature"],
        "weights_sha256": model_state_sha256(model),
        "inputs_sha256": arrays_sha256(feed),
    }
    save_reference(
        tmp_path / "big_ref.npz",
        {"amplitude": amplitude.numpy(), "phase": phase.numpy()},
        provenance,
    )
    original = runners_module.OnnxRuntimeRunner._infer
    calls = []

    def spy(self, feed):  # type: ignore[no-untyped-def]
        calls.append(feed["diffraction"][:, 0, 0, 0].tolist())
        outputs = original(self, feed)
        if len(calls) == 3:  # third chunk: sample 4 is its first row
            outputs["phase"] = outputs["phase"].copy()
            outputs["phase"][0, 0, 1, 2] = np.inf
        return outputs

    monkeypatch.setattr(runners_module.OnnxRuntimeRunner, "_infer", spy)
    report = run_check(
        CheckOptions(
            artifacts=artifacts,
            inputs=tmp_path / "big.npz",
            reference=tmp_path / "big_ref.npz",
            device="cpu",
        )
    )
    first_pixel = feed["diffraction"][:, 0, 0, 0].tolist()
    assert calls == [first_pixel[0:2], first_pixel[2:4], [first_pixel[4]] * 2]  # last one padded
    assert _failed(report) == {
        ("phase", "eager[cpu]", "onnxruntime[cpu]"),
        ("phase", "onnxruntime[cpu]", "tf-reference"),
    }
    assert "[4, 0, 1, 2]" in json.dumps(
        [c.to_dict() for c in report.comparisons if c.status != "pass"]
    )
    passing = [c for c in report.comparisons if c.status == "pass"]
    assert len(passing) == 12


def test_calibrate_writes_a_tolerance_file_with_the_measured_figures(
    artifacts: Path, tmp_path: Path
) -> None:
    from core.tolerances import ToleranceTable

    out = tmp_path / "tolerances.json"
    proc = _parity(
        "check", "--artifacts", str(artifacts), "--device", "cpu", "--calibrate", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    report = ParityReport.load_json(artifacts / "report" / "report.json")
    measured = [
        c
        for c in report.comparisons
        if (c.output, c.pair_class) == ("amplitude", "torch-vs-artifact")
    ]
    figures = data["measured"]["amplitude"]["torch-vs-artifact"]["cpu"]  # the run's own figures
    assert figures["n_comparisons"] == len(measured) == 3
    assert figures["pairs"] == sorted(f"{c.left} vs {c.right}" for c in measured)
    assert figures["max_abs"] == max(c.max_abs for c in measured)
    table = ToleranceTable.load(out)
    assert table.lookup("amplitude", "vs-reference", "cpu").atol > 0
    again = _parity(
        "check", "--artifacts", str(artifacts), "--device", "cpu", "--tolerances", str(out)
    )
    assert again.returncode == 0, again.stderr


def test_unknown_key_in_tolerance_file_is_a_usage_error(artifacts: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tol.json"
    bad.write_text(json.dumps({"tolerances": {"amplitdue": {}}}))
    proc = _parity("check", "--artifacts", str(artifacts), "--tolerances", str(bad))
    assert proc.returncode == 2 and "amplitdue" in proc.stderr and "Traceback" not in proc.stderr


def test_auto_device_skips_cuda_runners_that_cannot_start_with_a_note(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto saw CUDA (e.g. torch has a GPU) but a CUDA runner fails to start: CPU parity, noted."""
    import parity.check as check_module

    monkeypatch.setattr(check_module, "resolve_devices", lambda device: ["cpu", "cuda"])
    report = run_check(CheckOptions(artifacts=artifacts, device="auto"))
    assert report.verdict == "pass"
    assert all(r.requested_device != "cuda" for r in report.runners)
    assert any("skipped CUDA runners" in note for note in report.notes)


def test_check_against_a_noisy_reference_exits_1_naming_each_runner(artifacts: Path) -> None:
    """Every backend agrees with eager, the reference does not: a parity failure, exit 1."""
    with np.load(artifacts / "reference.npz", allow_pickle=False) as data:
        outputs = {k: data[k] for k in data.files}
    noise = np.random.default_rng(0).normal(0.0, 1e-3, outputs["amplitude"].shape)
    outputs["amplitude"] = outputs["amplitude"] + noise.astype(np.float32)
    np.savez(artifacts / "reference.npz", **outputs)  # its digests cover inputs and weights only
    proc = _parity("check", "--artifacts", str(artifacts), "--device", "cpu")
    assert proc.returncode == 1, proc.stderr
    assert "parity FAIL: 10/14 comparisons passed" in proc.stdout
    assert not [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    report = ParityReport.load_json(artifacts / "report" / "report.json")
    assert report.verdict == "fail" and report.exit_code == 1
    assert _failed(report) == {
        ("amplitude", runner, "tf-reference")
        for runner in ("eager[cpu]", "torchscript[cpu]", "pt2[cpu]", "onnxruntime[cpu]")
    }
