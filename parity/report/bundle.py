"""Write the JSON record and every view of a report into one folder."""

from __future__ import annotations

import logging
from pathlib import Path

from parity.report.html_page import write_html
from parity.report.junit import write_junit
from parity.report.markdown import write_markdown
from parity.results import ParityReport

__all__ = ["write_all", "write_json"]

logger = logging.getLogger(__name__)


def write_json(report: ParityReport, directory: str | Path) -> Path:
    """Write ``report.json`` (the record the other views are made from)."""
    return report.save_json(Path(directory) / "report.json")


def write_all(report: ParityReport, directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``junit.xml`` and ``report.html`` into ``directory``.

    Returns:
        Paths keyed ``json``, ``markdown``, ``junit``, ``html``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(report, directory)}
    write_markdown(report, directory)
    paths["markdown"] = directory / "report.md"
    paths["junit"] = write_junit(report, directory)
    paths["html"] = write_html(report, directory)
    logger.info("parity reports written to %s", directory)
    return paths
