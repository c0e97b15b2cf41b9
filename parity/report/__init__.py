"""Views of a :class:`parity.results.ParityReport`: JSON, Markdown, JUnit XML, HTML, error maps.

Every writer takes the report and an output folder and returns what it wrote; none of them
computes anything new, so a report loaded back from ``report.json`` renders identically.
"""

from __future__ import annotations

from parity.report.bundle import write_all, write_json
from parity.report.error_map import error_map_filename, render_error_map
from parity.report.html_page import render_html, write_html
from parity.report.junit import write_junit
from parity.report.markdown import render_markdown, write_markdown

__all__ = [
    "error_map_filename",
    "render_error_map",
    "render_html",
    "render_markdown",
    "write_all",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
]
