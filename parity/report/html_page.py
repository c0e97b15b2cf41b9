"""``report.html``: one self-contained page (inline CSS, no scripts) with the verdict, the
pair table, failure details, error maps (PNG files referenced by relative path) and the run's
context. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from parity.report.table import cell_text, failure_detail, pair_rows, verdict_line
from parity.results import ParityReport

__all__ = ["write_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}td.fail{background:#fde8e8}td.pass{background:#eaf7ea}
.verdict{font-size:1.3em;font-weight:bold}.fail-v{color:#b00}.pass-v{color:#070}
pre{background:#f7f7f7;padding:8px;overflow-x:auto}figure{display:inline-block;margin:0.5em}
img{max-width:100%;border:1px solid #ddd}
"""


def write_html(report: ParityReport, directory: str | Path) -> Path:
    """Write ``report.html`` into ``directory`` and return its path."""
    outputs, rows = pair_rows(report)
    body = [
        f'<p class="verdict {"pass-v" if report.verdict == "pass" else "fail-v"}">'
        f"{escape(verdict_line(report).replace('`', ''))}</p>"
    ]
    if rows:
        head = "".join(f"<th>{escape(o)}<br><small>max abs / max rel</small></th>" for o in outputs)
        body.append(f"<table><tr><th>pair</th><th>device</th>{head}</tr>")
        for row in rows:
            cells = []
            for o in outputs:
                c = row.cells.get(o)
                css = "" if c is None else ("pass" if c.passed else "fail")
                cells.append(f'<td class="{css}">{escape(cell_text(c))}</td>')
            body.append(
                f"<tr><td>{escape(row.label)}</td><td>{escape(row.device)}</td>{''.join(cells)}</tr>"
            )
        body.append("</table>")
    if report.errors:
        body.append("<h2>Errors and notes</h2><ul>")
        body += [f"<li>{escape(e)}</li>" for e in report.errors]
        body.append("</ul>")
    failed = report.failed_comparisons
    if failed:
        body.append("<h2>Failures</h2>")
        for c in failed:
            body.append(f"<h3>{escape(c.label())} ({escape(c.device)})</h3>")
            body.append(f"<pre>{escape(chr(10).join(failure_detail(c)))}</pre>")
    maps = report.maps()
    if maps:
        body.append("<h2>Error maps</h2>")
        for m in maps:
            caption = f"{m.output}: {m.left} vs {m.right}, sample {m.sample}"
            body.append(
                f'<figure><img src="{escape(quote(m.png), quote=True)}" '
                f'alt="{escape(caption, quote=True)}"><figcaption>{escape(caption)}</figcaption></figure>'
            )
    body.append("<h2>Run</h2>")
    if report.runners:
        body.append(
            "<table><tr><th>runner</th><th>kind</th><th>requested</th><th>actual</th>"
            "<th>providers</th><th>seconds</th></tr>"
        )
        for r in report.runners:
            body.append(
                f"<tr><td>{escape(r.name)}</td><td>{escape(r.kind)}</td>"
                f"<td>{escape(r.requested_device)}</td><td>{escape(r.actual_device)}</td>"
                f"<td>{escape(', '.join(r.providers))}</td><td>{r.seconds:.2f}</td></tr>"
            )
        body.append("</table>")
    body.append(
        f"<p>artifacts: <code>{escape(report.artifacts_dir)}</code>, created {escape(report.created)}</p>"
    )
    for title, data in (
        ("Precision policy", report.precision),
        ("Environment", report.environment),
        ("Reference provenance", report.reference_provenance),
    ):
        body.append(
            f"<details><summary>{escape(title)}</summary><pre>{escape(_json(data))}</pre></details>"
        )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(f'Parity {report.verdict.upper()}: {report.head}')}</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>Parity report</h1>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
