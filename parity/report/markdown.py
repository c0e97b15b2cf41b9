"""``report.md``: a verdict line and one table a reviewer reads in ten seconds, then details.

When ``GITHUB_STEP_SUMMARY`` is set (GitHub Actions), the same Markdown is appended to that
file so the table shows on the workflow run's summary page.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parity.report.table import cell_text, failure_detail, pair_rows, verdict_line
from parity.results import ParityReport

__all__ = ["reference_line", "render_markdown", "write_markdown"]

logger = logging.getLogger(__name__)

_MAX_VALUE_CHARS = 120
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def reference_line(report: ParityReport) -> str:
    """One line naming the reference every ``vs tf-reference`` row is measured against."""
    prov = report.reference_provenance
    if not prov:
        return "**Reference:** none (backends compared pairwise only)"
    parts = [
        f"generator `{_inline(str(prov.get('generator', '?')))}`",
        f"TensorFlow {_inline(str(prov.get('tensorflow_version', '?')))}",
        f"Keras {_inline(str(prov.get('keras_version', '?')))}",
        f"device `{_inline(str(prov.get('device', '?')))}`",
        f"weights `{str(prov.get('weights_sha256', ''))[:12]}`",
        f"inputs `{str(prov.get('inputs_sha256', ''))[:12]}`",
    ]
    return "**Reference (`tf-reference`):** " + ", ".join(parts)


def render_markdown(report: ParityReport) -> str:
    """The Markdown text of the report."""
    outputs, rows = pair_rows(report)
    lines = [f"## {verdict_line(report)}", "", reference_line(report), ""]
    if rows:
        lines.append(
            "| pair | device | "
            + " | ".join(f"{_cell(o)} (max abs / max rel)" for o in outputs)
            + " |"
        )
        lines.append("|---|---|" + "---|" * len(outputs))
        for row in rows:
            cells = [cell_text(row.cells.get(o)) for o in outputs]
            lines.append(
                f"| {_cell(row.label)} | {_cell(row.device)} | "
                + " | ".join(_cell(c) for c in cells)
                + " |"
            )
        lines.append("")
    if report.notes:
        lines += ["### Notes", ""]
        lines += [f"- {_inline(note)}" for note in report.notes]
        lines.append("")
    failed = report.failed_comparisons
    if failed:
        maps = {(m.output, m.left, m.right): m for m in report.maps()}
        lines += ["### Failures", ""]
        for c in failed:
            lines.append(f"**{_inline(c.label())}** ({_inline(c.device)}): {', '.join(c.failures)}")
            lines += [f"- {_inline(d)}" for d in failure_detail(c)]
            m = maps.get((c.output, c.left, c.right))
            if m is not None:
                lines.append(f"- error map (sample {m.sample}): [{m.png}]({m.png})")
            lines.append("")
    lines += ["### Run", ""]
    if report.runners:
        lines += [
            "| runner | kind | requested | actual | providers | seconds |",
            "|---|---|---|---|---|---|",
        ]
        for r in report.runners:
            lines.append(
                f"| {_cell(r.name)} | {_cell(r.kind)} | {_cell(r.requested_device)} | "
                f"{_cell(r.actual_device)} | {_cell(', '.join(r.providers) or '—')} | {r.seconds:.2f} |"
            )
        lines.append("")
    lines.append(f"- **precision**: {_pairs(report.precision)}")
    threads = report.environment.get("threads")
    if isinstance(threads, Mapping):  # reports from before --threads have none
        lines.append(f"- **torch CPU threads**: {_pairs(threads)}")
    lines.append(
        f"- **artifacts**: {_value(report.artifacts_dir)}, created {_inline(report.created)}"
    )
    lines += ["", "<details><summary>Environment and reference provenance</summary>", ""]
    lines += [f"- environment {_value(k)}: {_value(v)}" for k, v in report.environment.items()]
    lines += [
        f"- reference {_value(k)}: {_value(v)}" for k, v in report.reference_provenance.items()
    ]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def write_markdown(report: ParityReport, directory: str | Path) -> str:
    """Write ``report.md`` into ``directory``, and append it to ``$GITHUB_STEP_SUMMARY`` if set;
    returns the text."""
    text = render_markdown(report)
    path = Path(directory) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as exc:  # a summary is a convenience; the report itself is written
            logger.warning("cannot append to GITHUB_STEP_SUMMARY=%s: %s", summary, exc)
    return text


def _plain(text: object) -> str:
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def _inline(text: object) -> str:
    # GitHub renders raw HTML in Markdown: runner output in error messages must stay text.
    return _plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: object) -> str:
    return _inline(text).replace("|", "\\|")


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = _plain(text)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 1] + "…"
    return f"`{text.replace('`', chr(39))}`"


def _pairs(mapping: Mapping[str, Any]) -> str:
    if not mapping:
        return "not recorded"
    return ", ".join(f"{_inline(k)}={_value(v)}" for k, v in mapping.items())
