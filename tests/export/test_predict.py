"""``export predict``: a whole scan through ONNX Runtime, torch-free, equal to ptycho_torch.infer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from export.predict import Predictor
from ptycho_torch.errors import ExitCode
from ptycho_torch.scan_reader import ScanReader
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz
from ptycho_torch.stitch import StitchedObject
from ptychopinn.main import main

if TYPE_CHECKING:
    from export.build import BuildResult

# Runs a CLI in a process where importing torch (and the other frameworks a host lacks) fails.
NO_TORCH = """
import runpy, sys
BLOCKED = {"torch", "lightning", "tensorflow", "keras", "onnx", "onnxscript"}
class NoFrameworks:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this host (blocked by the test)")
        return None
sys.meta_path.insert(0, NoFrameworks())
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _no_torch(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def long_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """203 patterns (odd: the last batch of any B > 1 is padded), N=64, with objectGuess."""
    path = tmp_path_factory.mktemp("scan") / "scan.npz"
    return write_npz(simulate_scan(SimulationConfig(seed=5, n_images=203)), path)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """41 patterns (odd), N=64, with objectGuess: for the fast tests."""
    path = tmp_path_factory.mktemp("scan") / "scan.npz"
    return write_npz(simulate_scan(SimulationConfig(seed=6, n_images=41)), path)


def _wrapped(d: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * d.astype(np.float64))))


def _assert_same_object(got: StitchedObject, expected: StitchedObject) -> None:
    """Same weights; amplitude and (wrapped) phase within float32 round-off of the patches."""
    assert got.obj.shape == expected.obj.shape and np.array_equal(got.weight, expected.weight)
    amp_err = np.abs(np.abs(got.obj) - np.abs(expected.obj)).max()
    phase_err = _wrapped(np.angle(got.obj) - np.angle(expected.obj)).max()
    assert amp_err <= 1e-6 and phase_err <= 4e-6, (amp_err, phase_err)


def _infer(checkpoint: Path, scan: Path) -> StitchedObject:
    """What ``python -m export infer`` stitches (eager PyTorch, its batch 64)."""
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.infer import reconstruct
    from ptycho_torch.scan import load_npz

    return reconstruct(load_model(checkpoint), load_npz(scan), batch_size=64).stitched


@pytest.mark.slow
def test_predict_equals_ptycho_torch_infer_on_the_same_scan_and_checkpoint(
    built: BuildResult, model_file: Path, long_scan: Path, tmp_path: Path
) -> None:
    assert 203 % built.signature.inputs[0].shape[0] != 0  # a padded last batch
    argv = ["predict", "--artifacts", str(built.out), "--data", str(long_scan)]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    with np.load(tmp_path / "r" / "reconstruction.npz") as data:
        assert data["object"].dtype == np.complex64 and data["phase"].dtype == np.float32
        assert np.array_equal(data["amplitude"], np.abs(data["object"]))
        got = StitchedObject(data["object"], data["weight"])
    _assert_same_object(got, _infer(model_file, long_scan))
    record = json.loads((tmp_path / "r" / "prediction.json").read_text())
    assert record["patterns"] == 203 and record["batches"] == -(-203 // record["batch"])
    assert record["providers"] == ["CPUExecutionProvider"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "amplitude.png",
        "phase.png",
        "prediction.json",
        "reconstruction.npz",
    ]


def test_predictor_equals_infer_on_a_short_scan(
    built: BuildResult, model_file: Path, scan: Path
) -> None:
    with ScanReader(scan) as reader:
        got = Predictor(built.out).predict(reader).stitched
    _assert_same_object(got, _infer(model_file, scan))


@pytest.mark.slow
def test_predict_equals_infer_at_gridsize_2_with_the_physics_head(
    built_physics: BuildResult, scan: Path
) -> None:
    """Groups of 4 neighbours: every point is predicted in several groups and averaged."""
    with ScanReader(scan) as reader:
        got = Predictor(built_physics.out).predict(reader).stitched
    _assert_same_object(got, _infer(Path(built_physics.manifest.checkpoint.path), scan))


@pytest.mark.parametrize(
    "module",
    # the second spelling of the same main (tests/ptychopinn/test_main.py): two more interpreters
    ["export", pytest.param("ptychopinn", marks=pytest.mark.slow)],
)
def test_predict_and_verify_run_where_torch_cannot_be_imported(
    module: str, artifacts: Path, scan: Path, tmp_path: Path
) -> None:
    out = tmp_path / "recon"
    proc = _no_torch(module, "predict", "--artifacts", artifacts, "--data", scan, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "predicted 41 patterns in" in proc.stdout and "patterns/s" in proc.stdout
    assert (out / "reconstruction.npz").is_file() and (out / "phase.png").is_file()
    proc = _no_torch(module, "verify", artifacts)
    assert proc.returncode == 0, proc.stderr
    assert "verify PASS" in proc.stdout
    assert "phase | onnxruntime[cpu] vs reference | PASSED" in proc.stdout


def test_predict_reads_at_most_one_batch_of_patterns_at_a_time(
    built: BuildResult, scan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[int] = []
    original = ScanReader.take

    def spy(self: ScanReader, indices: np.ndarray) -> np.ndarray:
        taken.append(int(np.size(indices)))
        return original(self, indices)

    monkeypatch.setattr(ScanReader, "take", spy)
    predictor = Predictor(built.out)
    with ScanReader(scan) as reader:
        stats = predictor.predict(reader).stats
    assert max(taken) == predictor.batch * predictor.channels and sum(taken) == 41
    assert stats.batches == len(taken) and stats.patterns == 41


def test_float64_scan_is_cast_once_with_one_note_and_gives_the_same_object(
    built: BuildResult, scan: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with np.load(scan) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64)
    wide = tmp_path / "scan64.npz"
    np.savez(wide, **arrays)
    predictor = Predictor(built.out)
    with ScanReader(scan) as reader:
        narrow_obj = predictor.predict(reader).stitched.obj
    with caplog.at_level("INFO"), ScanReader(wide) as reader:
        wide_obj = predictor.predict(reader).stitched.obj
    notes = [r.getMessage() for r in caplog.records if "cast" in r.getMessage()]
    assert len(notes) == 1 and "diffraction float64->float32" in notes[0]
    assert np.array_equal(narrow_obj, wide_obj)


def _predict(
    artifacts: Path, data: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = main(["predict", "--artifacts", str(artifacts), "--data", str(data), "--out", str(out)])
    return code, capsys.readouterr().err


def test_scan_of_another_pattern_size_is_exit_2_naming_both(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = write_npz(simulate_scan(SimulationConfig(N=32, n_images=9)), tmp_path / "n32.npz")
    code, err = _predict(built.out, small, tmp_path / "r", capsys)
    assert code == ExitCode.USAGE and "N=32" in err and "built for N=64" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("value", "words"), [(np.nan, "non-finite"), (-2.0, "negative")])
def test_nan_or_negative_pattern_is_exit_2_naming_it(
    built: BuildResult,
    scan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: float,
    words: str,
) -> None:
    with np.load(scan) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["diffraction"][30, 3, 4] = value
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    code, err = _predict(built.out, bad, tmp_path / "r", capsys)
    assert code == ExitCode.USAGE and words in err and "first in pattern 30" in err


def test_manifest_edited_to_another_shape_is_exit_4_before_anything_runs(
    artifacts: Path, scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((artifacts / "manifest.json").read_text())
    for spec in (*manifest["signature"]["inputs"], *manifest["signature"]["outputs"]):
        spec["shape"][0] = 16
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    code, err = _predict(artifacts, scan, tmp_path / "r", capsys)
    assert code == ExitCode.STALE, err
    assert "model.onnx and manifest.json disagree" in err and "float32[16, 1, 64, 64]" in err
    assert "manifest.json was changed after the build" in err


def test_output_folder_is_replaced_whole_or_not_at_all(
    built: BuildResult,
    scan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "r"
    assert _predict(built.out, scan, out, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*args: object) -> list[Path]:
        raise KeyboardInterrupt  # mid-write: the PNGs are not written yet

    monkeypatch.setattr("ptychopinn.host.write_reconstruction", crash)
    assert _predict(built.out, scan, out, capsys)[0] == ExitCode.INTERRUPTED
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the good output stays
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary folder left
    (out / "notes.txt").write_text("mine")
    code, err = _predict(built.out, scan, out, capsys)
    assert code == ExitCode.USAGE and "notes.txt" in err  # someone else's file: not replaced


def test_cuda_that_does_not_start_is_exit_3_not_a_cpu_run(
    built: BuildResult, scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            Predictor(built.out, device="cuda")
            pytest.skip("CUDA runs on this machine")
        except Exception:  # noqa: BLE001 - the library cannot start: the case under test
            pass
    argv = ["predict", "--artifacts", str(built.out), "--data", str(scan)]
    argv += ["--out", str(tmp_path / "r")]
    assert main([*argv, "--device", "cuda"]) == ExitCode.ENVIRONMENT
    assert "requested CUDA" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_io_binding_gives_what_session_run_gives(built: BuildResult, scan: Path) -> None:
    """The CUDA path's IO binding, exercised on CPU buffers (no GPU needed)."""
    plain = Predictor(built.out)
    bound = Predictor(built.out)
    assert not bound.host.io_bound and bound.host.bind_io()
    with ScanReader(scan) as reader:
        expected = plain.predict(reader).stitched
        got = bound.predict(reader)
    assert got.stats.io_binding and np.array_equal(got.stitched.obj, expected.obj)
