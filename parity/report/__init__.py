"""Views of a :class:`parity.results.ParityReport`: JSON, Markdown, JUnit XML, HTML, error maps.

Every writer takes the report and an output folder and returns what it wrote; none of them
computes anything new, so a report loaded back from ``report.json`` renders identically. The
check writes them into a temporary folder swapped in whole for the report folder
(:mod:`parity.report.folder`).
"""

from __future__ import annotations

from parity.report.bundle import write_all, write_json
from parity.report.error_map import error_map_filename, render_error_map
from parity.report.folder import check_report_folder, holds_report, replace_report_folder
from parity.report.html_page import render_html, write_html
from parity.report.junit import write_junit
from parity.report.markdown import render_markdown, write_markdown

__all__ = [
    "check_report_folder",
    "error_map_filename",
    "holds_report",
    "render_error_map",
    "render_html",
    "render_markdown",
    "replace_report_folder",
    "write_all",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
]
