"""`parity check --repro DIR`: a failing check leaves a folder that reruns the failure with numpy
and onnxruntime only; the report names the bisect command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ptychopinn.main import main as parity_main
from scripts.plant_onnx_fault import scale_onnx_conv


def test_failing_check_writes_a_reproducer_that_reruns(artifacts: Path, tmp_path: Path) -> None:
    scale_onnx_conv(artifacts, "encoder.1.convs.conv2", 1.01)
    repro = tmp_path / "repro"
    code = parity_main(
        ["check", "--artifacts", str(artifacts), "--device", "cpu", "--repro", str(repro)]
    )
    assert code == 1
    names = {p.name for p in repro.iterdir()}
    assert {
        "inputs.npz",
        "model.onnx",
        "case.json",
        "rerun.py",
        "README.md",
        "manifest.json",
    } <= names
    case = json.loads((repro / "case.json").read_text())
    assert "onnxruntime" in case["pair"]["left"] + case["pair"]["right"]
    assert case["failures"] and {"atol", "rtol", "rtol_peak", "peak"} <= set(case["failures"][0])
    for failure in case["failures"]:
        assert (
            f"left_{failure['output']}.npy" in names and f"right_{failure['output']}.npy" in names
        )
    assert case["bisect"].startswith("python -m export bisect")
    assert case["environment"]  # the fingerprint of the run that failed
    # a maintainer elsewhere: only the folder, numpy and onnxruntime (the script imports nothing else)
    (tmp_path / "elsewhere").mkdir()
    moved = repro.rename(tmp_path / "elsewhere" / "case")
    run = subprocess.run(
        [sys.executable, "-I", str(moved / "rerun.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILS" in run.stdout and "failure reproduced" in run.stdout
    assert "onnxruntime here vs stored" in run.stdout
    # the verdict came from the comparison kernel the folder carries, not from this project
    modules = _modules_rerun_imports(moved / "rerun.py")
    assert {n.split(".")[0] for n in modules} == {"core"}, modules
    assert all(Path(f).is_relative_to(moved / "core") for f in modules.values()), modules
    report = json.loads((artifacts / "report" / "report.json").read_text())
    assert any("python -m export bisect" in n for n in report["notes"])
    assert any("reproducer written to" in n for n in report["notes"])


def _modules_rerun_imports(script: Path) -> dict[str, str]:
    """Run ``script`` in isolated mode; the modules of this project (and torch) it imported."""
    ours = ("core", "export", "parity", "ptychopinn", "ptycho_torch", "bench", "torch")
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = [{str(script)!r}]\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps({{n: str(m.__file__) for n, m in sys.modules.items() "
        f"if n.split('.')[0] in {ours!r}}}))\n"
    )
    run = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_passing_check_writes_no_reproducer(artifacts: Path, tmp_path: Path) -> None:
    repro = tmp_path / "repro"
    assert (
        parity_main(
            ["check", "--artifacts", str(artifacts), "--device", "cpu", "--repro", str(repro)]
        )
        == 0
    )
    assert not repro.exists()


def test_repro_into_a_non_empty_folder_is_refused_before_any_work(
    artifacts: Path, tmp_path: Path, capsys
) -> None:
    repro = tmp_path / "repro"
    repro.mkdir()
    (repro / "keep.txt").write_text("mine")
    assert (
        parity_main(
            ["check", "--artifacts", str(artifacts), "--device", "cpu", "--repro", str(repro)]
        )
        == 2
    )
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (repro / "keep.txt").read_text() == "mine"
