"""Report record and its views: JSON round trip, Markdown, JUnit, HTML with error maps."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from core.compare import ComparedOutput, compare_arrays
from core.tolerances import ToleranceTable
from parity.report import (
    error_map_filename,
    render_error_map,
    write_all,
    write_html,
    write_json,
    write_junit,
    write_markdown,
)
from parity.results import REPORT_SCHEMA, ErrorMap, ParityReport, ReportFormatError, RunnerInfo

TABLE = ToleranceTable.default()


def _comparison(output, left, right, pair_class, device, noise=0.0, nan=False):
    rng = np.random.default_rng(1)
    ref = rng.random((2, 1, 8, 8), dtype=np.float32)
    a = ref + np.float32(noise)
    if nan:
        a[1, 0, 2, 3] = np.nan
    return compare_arrays(
        ComparedOutput(
            output,
            left,
            right,
            TABLE.lookup(output, pair_class, device),
            wrap_phase=output == "phase",
            pair_class=pair_class,
            device=device,
        ),
        a,
        ref,
    )


def _report(failing: bool = True) -> ParityReport:
    comparisons = [
        _comparison("amplitude", "eager[cpu]", "tf-reference", "vs-reference", "cpu", 1e-7),
        _comparison("phase", "eager[cpu]", "tf-reference", "vs-reference", "cpu", 2e-7),
        _comparison("amplitude", "eager[cpu]", "onnxruntime[cpu]", "torch-vs-artifact", "cpu"),
        _comparison(
            "phase",
            "eager[cpu]",
            "onnxruntime[cpu]",
            "torch-vs-artifact",
            "cpu",
            1e-2 if failing else 0.0,
            nan=failing,
        ),
    ]
    failed = any(not c.passed for c in comparisons)
    return ParityReport(
        created="2025-01-01T00:00:00+00:00",
        head="object",
        artifacts_dir="artifacts",
        verdict="fail" if failed else "pass",
        exit_code=1 if failed else 0,
        environment={"torch": "2.6.0", "odd": math.nan, "nested": {"inf": -math.inf, "t": [1, 2]}},
        precision={"tf32": False, "deterministic": True},
        reference_provenance={"generator": "tf-twin", "weights_sha256": "ab" * 32},
        runners=[
            RunnerInfo("eager[cpu]", "eager", "cpu", "cpu", seconds=0.5),
            RunnerInfo(
                "onnxruntime[cpu]",
                "onnxruntime",
                "cpu",
                "cpu",
                providers=["CPUExecutionProvider"],
                detail={"opset": 18, "x": math.inf},
                seconds=0.25,
            ),
            RunnerInfo("tf-reference", "tf-reference"),
        ],
        comparisons=comparisons,
        notes=["runner <b>crashed</b> & \x07 bell"] if failing else [],
    )


def test_json_round_trip_is_exact(tmp_path):
    report = _report()
    report.error_maps.append(ErrorMap("phase", "a", "b", 1, "x.png"))
    path = write_json(report, tmp_path)

    def reject(name):
        raise AssertionError(f"bare {name} literal: not strict JSON")

    json.loads(path.read_text(), parse_constant=reject)
    loaded = ParityReport.load_json(path)
    assert loaded == report
    assert loaded.schema == REPORT_SCHEMA
    assert isinstance(loaded.error_maps[0], ErrorMap)


def test_error_maps_appended_as_dicts_are_saved_as_error_maps(tmp_path):
    report = _report()
    report.error_maps.append(
        {"output": "phase", "left": "a", "right": "b", "sample": 1, "png": "x.png"}
    )
    loaded = ParityReport.load_json(write_json(report, tmp_path))
    assert loaded.error_maps == [ErrorMap("phase", "a", "b", 1, "x.png")]
    assert loaded.to_dict() == report.to_dict()
    assert math.isnan(loaded.environment["odd"])
    assert loaded.runners[1].detail["x"] == math.inf


def test_load_rejects_other_schema(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"schema": 99}')
    with pytest.raises(ReportFormatError, match="schema 99"):
        ParityReport.load_json(path)


def test_markdown_has_verdict_and_one_table_and_goes_to_step_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = _report()
    text = write_markdown(report, tmp_path)
    assert (tmp_path / "report.md").read_text() == text
    assert text.startswith("## ❌ Parity FAIL (exit code 1)")
    assert "| pair | device | amplitude (max abs / max rel) | phase (max abs / max rel) |" in text
    assert "| eager[cpu] vs onnxruntime[cpu] | cpu | ✅" in text
    lines = text.split("\n")
    table = lines.index(
        "| pair | device | amplitude (max abs / max rel) | phase (max abs / max rel) |"
    )
    assert "❌" in lines[table + 3]  # the failing phase row, second pair
    assert lines[2].startswith("**Reference (`tf-reference`):**")
    assert "### Failures" in text and "nonfinite" in text
    assert text.count("**phase | eager[cpu] vs onnxruntime[cpu]**") == 1  # failures only
    assert "CPUExecutionProvider" in text and "tf32" in text
    assert "<b>" not in text and "&lt;b&gt;crashed" in text  # runner text is not HTML
    assert summary.read_text() == "earlier step\n" + text + "\n"


def test_markdown_without_step_summary_writes_only_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    text = write_markdown(_report(failing=False), tmp_path)
    assert text.startswith("## ✅ Parity PASS (exit code 0)")
    assert "### Failures" not in text


def test_junit_parses_with_right_counts(tmp_path):
    report = _report()
    root = ET.parse(write_junit(report, tmp_path)).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == len(report.comparisons)  # notes are not test cases
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == 1 and suite.get("failures") == "1" and suite.get("errors") == "0"
    assert failures[0].get("name") == "phase[eager-cpu vs onnxruntime-cpu]"
    message = failures[0].find("failure").get("message")
    assert "max_abs=" in message and "nonfinite" in message
    assert any(c.get("name") == "amplitude[eager-cpu vs tf-reference]" for c in cases)
    assert suite.find("testcase/error") is None
    notes = suite.find("system-out").text
    assert "note: runner <b>crashed</b>" in notes  # escaped in the file, intact when parsed


def test_junit_of_passing_report_has_no_failures(tmp_path):
    root = ET.parse(write_junit(_report(failing=False), tmp_path)).getroot()
    assert root.find("testsuite").get("failures") == "0"
    assert root.find("testsuite/testcase/failure") is None


def test_error_map_renders_png(tmp_path):
    rng = np.random.default_rng(0)
    left = rng.uniform(-np.pi, np.pi, (2, 16, 16)).astype(np.float32)
    right = left.copy()
    right[0, 3, 3] = np.nan
    png = render_error_map(left, right, True, "phase <sample 0>", tmp_path / "maps" / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flat = render_error_map(left[0], right[0] + 1, False, "amp", tmp_path / "a.png")
    assert flat.stat().st_size > 0
    with pytest.raises(ValueError, match="equal shapes"):
        render_error_map(left, right[:1], False, "x", tmp_path / "bad.png")


def test_html_references_error_maps_that_exist_and_escapes_text(tmp_path):
    report = _report()
    c = report.failed_comparisons[0]
    name = error_map_filename(c.output, c.left, c.right, c.worst_sample)
    png = render_error_map(
        np.zeros((1, 8, 8)), np.ones((1, 8, 8)), True, c.label(), tmp_path / "maps" / name
    )
    report.error_maps.append(
        ErrorMap(c.output, c.left, c.right, c.worst_sample, str(png.relative_to(tmp_path)))
    )
    page = write_html(report, tmp_path).read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((tmp_path / s).is_file() for s in sources)
    assert "<b>crashed</b>" not in page and "&lt;b&gt;crashed&lt;/b&gt;" in page
    assert "Parity FAIL" in page and "phase" in page


def test_write_all_writes_every_view(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    paths = write_all(_report(failing=False), tmp_path / "out")
    assert set(paths) == {"json", "markdown", "junit", "html"}
    assert all(Path(p).is_file() for p in paths.values())
    assert ParityReport.load_json(paths["json"]).verdict == "pass"
