"""A run's notes (no reference, CUDA runners skipped) are notes in every view, never errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np

from core.compare import ComparedOutput, compare_arrays
from core.tolerances import Tolerance
from parity.report import render_html, render_markdown, write_json, write_junit
from parity.results import ParityReport

NOTE = "no TensorFlow reference: compared backends pairwise only"


def _report(failing: bool) -> ParityReport:
    ref = np.zeros((1, 1, 4, 4), dtype=np.float32)
    comparison = compare_arrays(
        ComparedOutput("amplitude", "eager[cpu]", "onnxruntime[cpu]", Tolerance(1e-6, 0.0)),
        ref + failing,
        ref,
    )
    return ParityReport(
        created="2025-01-01T00:00:00+00:00",
        head="object",
        artifacts_dir="artifacts",
        verdict="fail" if failing else "pass",
        exit_code=int(failing),
        comparisons=[comparison],
        notes=[NOTE],
    )


def test_notes_of_a_failing_run_are_not_junit_errors(tmp_path):
    suite = ET.parse(write_junit(_report(failing=True), tmp_path)).getroot().find("testsuite")
    assert suite.get("errors") == "0" and suite.get("failures") == "1"
    assert suite.get("tests") == "1" and len(suite.findall("testcase")) == 1
    assert suite.find("system-out").text == f"note: {NOTE}"


def test_notes_of_a_passing_run_are_kept_in_junit(tmp_path):
    suite = ET.parse(write_junit(_report(failing=False), tmp_path)).getroot().find("testsuite")
    assert suite.get("errors") == "0" and suite.find("system-out").text == f"note: {NOTE}"


def test_markdown_and_html_list_notes_as_notes():
    report = _report(failing=True)
    text = render_markdown(report)
    assert "### Notes\n\n- " + NOTE in text and "Errors" not in text
    assert text.splitlines()[0].endswith("0/1 comparisons passed, 1 note(s)")
    page = render_html(report)
    assert f"<h2>Notes</h2>\n<ul>\n<li>{NOTE}</li>" in page and "Errors" not in page


def test_notes_are_saved_as_notes_and_old_reports_load_theirs(tmp_path):
    report = _report(failing=False)
    data = json.loads(write_json(report, tmp_path).read_text())
    assert data["notes"] == [NOTE] and "errors" not in data
    assert ParityReport.from_dict(data) == report
    data["errors"] = data.pop("notes")  # a report.json written before notes had their name
    assert ParityReport.from_dict(data).notes == [NOTE]
