"""``report.html``: one self-contained page (inline CSS, no scripts), the Jinja2 template
``templates/report.html.j2`` rendered with autoescaping on (every text from the report is
HTML-escaped there); this module only arranges the report's data for it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from core.output_comparison import OutputComparison
from parity.report.table import cell_text, failure_detail, pair_rows, verdict_line
from parity.results import ParityReport

__all__ = ["render_html", "write_html"]

TEMPLATE = "report.html.j2"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("parity.report", "templates"),
        autoescape=True,  # every value is text from the report, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: ParityReport) -> str:
    """The HTML text of the report."""
    outputs, rows = pair_rows(report)
    context: dict[str, Any] = {
        "report": report,
        "verdict": verdict_line(report).replace("`", ""),
        "outputs": outputs,
        "rows": [
            {
                "label": row.label,
                "device": row.device,
                "cells": [_cell(row.cells.get(output)) for output in outputs],
            }
            for row in rows
        ],
        "failures": [
            {"label": c.label(), "device": c.device, "detail": "\n".join(failure_detail(c))}
            for c in report.failed_comparisons
        ],
        "maps": [
            {
                "src": quote(m.png),
                "caption": f"{m.output}: {m.left} vs {m.right}, sample {m.sample}",
            }
            for m in report.maps()
        ],
        "sections": [
            ("Precision policy", _json(report.precision)),
            ("Environment", _json(report.environment)),
            ("Reference provenance", _json(report.reference_provenance)),
        ],
    }
    return _environment().get_template(TEMPLATE).render(context)


def write_html(report: ParityReport, directory: str | Path) -> Path:
    """Write ``report.html`` into ``directory`` and return its path."""
    path = Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def _cell(c: OutputComparison | None) -> dict[str, str]:
    css = "" if c is None else ("pass" if c.passed else "fail")
    return {"css": css, "text": cell_text(c)}


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
