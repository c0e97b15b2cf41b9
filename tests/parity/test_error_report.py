"""A check that stops before comparing (exit 2, 3 or 4) still writes report.md and junit.xml
stating the error, so a CI job shows why it failed."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from export.build import BuildResult
from parity.results import ParityReport
from ptychopinn.main import main as parity_main


def _copy(build: BuildResult, tmp_path: Path) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(build.out, copy)
    shutil.rmtree(copy / "report", ignore_errors=True)
    return copy


def test_changed_artifact_exit_4_writes_an_error_report(
    parity_build: BuildResult, tmp_path: Path, capsys
) -> None:
    copy = _copy(parity_build, tmp_path)
    with (copy / "model.onnx").open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert parity_main(["check", "--artifacts", str(copy), "--device", "cpu"]) == 4
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "model.onnx" in err
    report = ParityReport.load_json(copy / "report" / "report.json")
    assert report.verdict == "error" and report.exit_code == 4 and "model.onnx" in report.error
    assert "Parity ERROR (exit code 4)" in (copy / "report" / "report.md").read_text()
    suite = ET.parse(copy / "report" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    error = suite.find("testcase/error")
    assert error is not None and "model.onnx" in error.get("message", "")
    assert (copy / "report" / "report.html").is_file()


def test_bad_tolerances_exit_2_writes_an_error_report(
    parity_build: BuildResult, tmp_path: Path
) -> None:
    copy = _copy(parity_build, tmp_path)
    bad = tmp_path / "tol.json"
    bad.write_text('{"schema": 1, "entries": {"nonsense": 1}}')
    report_dir = tmp_path / "r"
    code = parity_main(
        [
            "check",
            "--artifacts",
            str(copy),
            "--tolerances",
            str(bad),
            "--report-dir",
            str(report_dir),
        ]
    )
    assert code == 2
    report = ParityReport.load_json(report_dir / "report.json")
    assert report.verdict == "error" and report.exit_code == 2 and "--tolerances" in report.error


def test_no_report_is_written_where_there_is_no_artifacts_folder(tmp_path: Path) -> None:
    assert parity_main(["check", "--artifacts", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "missing").exists()
