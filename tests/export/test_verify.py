"""``export verify`` on a copied artifacts folder: every tampering caught, with its exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.tolerances import Tolerance, ToleranceTable
from export.signature import TensorSpec
from export.verify import VerifyOptions, compare_output, tolerances_for, verify_artifacts
from ptycho_torch.errors import ExitCode
from ptychopinn.main import main


def _verify(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["verify", str(folder), *extra])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == (code != 0) and "Traceback" not in captured.err, captured.err
    return code, captured.out, errors[0] if errors else ""


def test_intact_folder_passes_every_output_against_the_reference(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _verify(artifacts, capsys)
    assert code == 0
    assert "amplitude | onnxruntime[cpu] vs reference | PASSED max_abs=" in out
    assert "phase | onnxruntime[cpu] vs reference | PASSED" in out and "atol=4e-06" in out
    assert "verify PASS" in out and "2/2 outputs within tolerance" in out


def test_one_flipped_byte_in_model_onnx_is_exit_4_naming_it(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray((artifacts / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (artifacts / "model.onnx").write_bytes(bytes(data))
    code, _, error = _verify(artifacts, capsys)
    assert code == ExitCode.STALE and "changed since the build (sha256 differs) model.onnx" in error


def test_a_missing_file_is_exit_4_naming_it(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (artifacts / "inputs.npz").unlink()
    code, _, error = _verify(artifacts, capsys)
    assert code == ExitCode.STALE and "missing inputs.npz" in error


def test_manifest_edited_to_another_shape_is_exit_4_saying_the_manifest_changed(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["signature"]["inputs"][0]["shape"] = [2, 1, 128, 128]
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    code, _, error = _verify(artifacts, capsys)
    assert code == ExitCode.STALE
    assert "model.onnx and manifest.json disagree (signature: manifest says" in error
    assert "diffraction: float32[2, 1, 128, 128]" in error
    assert "manifest.json was changed after the build" in error


def test_manifest_with_other_weights_digest_is_exit_4(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["checkpoint"]["weights_sha256"] = "0" * 64
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    code, _, error = _verify(artifacts, capsys)
    assert code == ExitCode.STALE and "weights_sha256: manifest says '000000" in error


def _other_weights_reference(artifacts: Path, tmp_path: Path, honest: bool) -> None:
    """Replace the bundled reference by eager outputs of other weights (seed 1). ``honest``: its
    provenance records them; else the old provenance stays (it claims the artifacts' weights)."""
    import torch

    from export.signature import Signature
    from export.wrapper import wrap
    from parity.reference import save_reference
    from ptycho_torch.checkpoint import load_model, model_state_sha256
    from tests.conftest import make_model_file

    model = load_model(make_model_file(tmp_path / "other.pt", seed=1))
    signature = Signature.from_dict(
        json.loads((artifacts / "manifest.json").read_text())["signature"]
    )
    with np.load(artifacts / "inputs.npz") as data:
        feed = [torch.from_numpy(data[name]) for name in signature.input_names]
    with torch.inference_mode():
        outputs = dict(
            zip(signature.output_names, (t.numpy() for t in wrap(model, signature)(*feed)))
        )
    provenance = json.loads((artifacts / "reference.json").read_text())
    if honest:
        provenance |= {
            "generator": "eager-pytorch (other weights)",
            "weights_sha256": model_state_sha256(model),
        }
    save_reference(artifacts / "reference.npz", outputs, provenance)


def test_reference_from_other_weights_is_exit_4_stale(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its provenance records the other weights: stale, caught before anything is compared."""
    _other_weights_reference(artifacts, tmp_path, honest=True)
    code, out, error = _verify(artifacts, capsys)
    assert code == ExitCode.STALE and "reference.npz is stale: weights_sha256" in error
    assert "vs reference" not in out


def test_reference_arrays_from_other_weights_under_the_right_provenance_is_exit_1(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Arrays swapped in under the old provenance: only the comparison can tell (exit 1)."""
    _other_weights_reference(artifacts, tmp_path, honest=False)
    code, out, error = _verify(artifacts, capsys)
    assert code == ExitCode.PARITY_FAILURE
    assert "amplitude | onnxruntime[cpu] vs reference | FAILED" in out and "verify FAIL" in out
    assert "differs from reference.npz: amplitude: max_abs=" in error and "phase" in error


def test_reference_without_provenance_is_exit_2(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (artifacts / "reference.json").unlink()
    code, _, error = _verify(artifacts, capsys)
    assert code == ExitCode.USAGE and "no provenance reference.json" in error


def test_reference_tolerances_from_provenance_are_used(artifacts: Path) -> None:
    provenance = json.loads((artifacts / "reference.json").read_text())
    provenance["tolerances"] = {
        "tolerances": {"phase": {"vs-reference": {"cpu": {"atol": 0.0, "rtol_peak": 1e-6}}}}
    }
    (artifacts / "reference.json").write_text(json.dumps(provenance))
    report = verify_artifacts(artifacts, VerifyOptions())
    phase = next(c for c in report.outputs if c.output == "phase")
    assert phase.tolerance == Tolerance(0.0, 0.0, rtol_peak=1e-6)
    line = next(line for line in report.lines() if line.startswith("phase |"))
    assert "atol=0 rtol_peak=1e-06 peak=" in line


def test_defaults_are_the_parity_tolerance_table() -> None:
    table = ToleranceTable.default()
    for device in ("cpu", "cuda"):
        ours = tolerances_for(device)
        for output in table.entries:
            assert ours[output] == table.lookup(output, "vs-reference", device)


def test_phase_is_compared_wrapped_and_weighted_by_amplitude() -> None:
    spec = TensorSpec("phase", (1, 1, 2, 2), "B,C,N,N", wraps=True, weighted_by="amplitude")
    ref = np.array([[[[np.pi - 1e-7, 0.5], [0.1, 0.2]]]], np.float32)
    got = ref.copy()
    got[0, 0, 0, 0] = -np.pi + 1e-7  # the same angle, across the cut
    got[0, 0, 1, 1] = 1.0  # wrong, but where the amplitude vanishes
    amplitude = np.array([[[[1.0, 1.0], [1.0, 0.0]]]], np.float32)
    check = compare_output(spec, got, ref, Tolerance(4e-6, 0.0), weight=amplitude)
    assert check.passed and check.max_abs < 1e-6, check
    got[0, 0, 0, 1] = 0.6
    failed = compare_output(spec, got, ref, Tolerance(4e-6, 0.0), weight=amplitude)
    assert not failed.passed and failed.worst_index == [0, 0, 0, 1] and failed.n_out == 1


def test_verify_copied_folder_from_elsewhere(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder is self-contained: copied under another name it verifies the same."""
    copy = tmp_path / "copied" / "art"
    shutil.copytree(artifacts, copy)
    assert _verify(copy, capsys)[0] == 0
