"""``junit.xml``: one testsuite per report, one testcase per output per pair.

Testcases are named ``phase[eager vs onnxruntime-cpu]``; a failing comparison carries a
``<failure>`` with its metrics; the run's notes go to ``<system-out>`` (never failures); a run
that stopped before comparing has one ``parity-check`` testcase carrying ``<error>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from core.output_comparison import OutputComparison
from parity.report.table import failure_detail, fmt, pair_slug
from parity.results import ParityReport

__all__ = ["testcase_name", "write_junit"]

# Characters XML 1.0 cannot carry even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def testcase_name(c: OutputComparison) -> str:
    """``phase[eager vs onnxruntime-cpu]``."""
    return f"{c.output}[{pair_slug(c.left)} vs {pair_slug(c.right)}]"


def write_junit(report: ParityReport, directory: str | Path) -> Path:
    """Write ``junit.xml`` into ``directory`` and return its path."""
    names = [testcase_name(c) for c in report.comparisons]
    duplicated = {n for n in names if names.count(n) > 1}
    suite = ET.Element(
        "testsuite",
        name=_clean(f"parity.{report.head}"),
        tests=str(len(report.comparisons) + (1 if report.error else 0)),
        failures=str(len(report.failed_comparisons)),
        errors="1" if report.error else "0",
        skipped="0",
        time=f"{sum(r.seconds for r in report.runners):.3f}",
        timestamp=_clean(report.created),
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", report.verdict),
        ("exit_code", report.exit_code),
        ("artifacts_dir", report.artifacts_dir),
    ):
        ET.SubElement(props, "property", name=key, value=_clean(str(value)))
    for c, name in zip(report.comparisons, names):
        _testcase(suite, c, f"{name}@{c.device}" if name in duplicated else name, report.head)
    if report.error:  # stopped before comparing (exit 2, 3 or 4): one errored case says why
        case = ET.SubElement(
            suite, "testcase", classname=_clean(f"parity.{report.head}"), name="parity-check"
        )
        err = ET.SubElement(
            case, "error", message=_clean(report.error), type=f"exit {report.exit_code}"
        )
        err.text = _clean(report.error)
    if report.notes:
        notes = ET.SubElement(suite, "system-out")
        notes.text = _clean("\n".join(f"note: {note}" for note in report.notes))
    root = ET.Element("testsuites", name="parity")
    root.append(suite)
    for attr in ("tests", "failures", "errors"):
        root.set(attr, suite.get(attr, "0"))
    ET.indent(root)
    path = Path(directory) / "junit.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _testcase(suite: ET.Element, c: OutputComparison, name: str, head: str) -> None:
    """One comparison's ``<testcase>``: a ``<failure>`` with its metrics, or its log line."""
    case = ET.SubElement(
        suite, "testcase", classname=_clean(f"parity.{head}.{c.output}"), name=_clean(name)
    )
    if c.passed:
        out = ET.SubElement(case, "system-out")
        out.text = _clean(c.log_line())
        return
    message = (
        f"{', '.join(c.failures) or 'fail'}: max_abs={fmt(c.max_abs)} "
        f"max_rel={fmt(c.max_rel)} atol={c.tolerance.atol:g} rtol={c.tolerance.rtol:g} "
        + (f"rtol_peak={c.tolerance.rtol_peak:g} peak={c.peak:.4g} " if c.peak is not None else "")
        + f"out={c.n_out}/{c.n_elements}"
    )
    failure = ET.SubElement(
        case, "failure", message=_clean(message), type=_clean(",".join(c.failures))
    )
    failure.text = _clean("\n".join(failure_detail(c)))


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)
