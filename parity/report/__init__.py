"""Views of a :class:`parity.results.ParityReport`: JSON, Markdown, JUnit XML, HTML, error maps.

Every writer takes the report and an output folder and returns what it wrote; none of them
computes anything new, so a report loaded back from ``report.json`` renders identically. The
check writes them into a temporary folder swapped in whole for the report folder
(:mod:`parity.report.folder`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from parity.report.error_map import error_map_filename, render_error_map
from parity.report.folder import check_report_folder, holds_report, replace_report_folder
from parity.report.html_page import render_html, write_html
from parity.report.junit import write_junit
from parity.report.markdown import render_markdown, write_markdown
from parity.results import ParityReport

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

logger = logging.getLogger(__name__)


def write_json(report: ParityReport, directory: str | Path) -> Path:
    """Write ``report.json`` (the record the other views are made from)."""
    return report.save_json(Path(directory) / "report.json")


def write_all(report: ParityReport, directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``junit.xml`` and ``report.html`` into ``directory``;
    their paths keyed ``json``, ``markdown``, ``junit``, ``html``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(report, directory)}
    write_markdown(report, directory)
    paths["markdown"] = directory / "report.md"
    paths["junit"] = write_junit(report, directory)
    paths["html"] = write_html(report, directory)
    # often a staging folder swapped in later: the caller's own line names the final one
    logger.debug("parity reports written to %s", directory)
    return paths
