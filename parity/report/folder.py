"""The report folder (``ARTIFACTS/report/`` or ``--report-dir``), replaced whole.

A report is written into a temporary sibling folder and swapped in once complete
(:func:`ptycho_torch.atomic.replace_folder`), so no error map of an earlier run stays beside a
new report. The swap deletes the previous folder, so a folder holding anything this tool did not
write is refused (exit 2, naming the files), never emptied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from parity.errors import ReportFolderError
from ptycho_torch.atomic import replace_folder

__all__ = [
    "ERROR_MAPS",
    "REPORT_FILES",
    "check_report_folder",
    "foreign_entries",
    "holds_report",
    "replace_report_folder",
]

T = TypeVar("T")

REPORT_FILES = ("report.json", "report.md", "report.html", "junit.xml")
ERROR_MAPS = "error_maps"  # a folder of PNG files
_FIX = "give --report-dir another folder"


def check_report_folder(folder: Path) -> None:
    """Refuse a report folder that could not be written or replaced whole, touching nothing.

    Raises:
        ReportFolderError: (exit 2) ``folder`` is a file, lies under a file, cannot be written
            (with the OS reason), or holds files this tool did not write (named).
    """
    try:
        if folder.is_dir():
            foreign = foreign_entries(folder)
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise ReportFolderError(
                    f"report folder {folder} holds files this tool did not write ({shown}); a "
                    f"report replaces the whole folder, so move them or {_FIX} (new or empty)"
                )
            real = folder.resolve() if folder.is_symlink() else folder  # the one replaced
            _check_writable(folder, real.parent)
            return
        if folder.exists() or folder.is_symlink():
            raise ReportFolderError(f"report folder {folder} is not a folder; {_FIX}")
        ancestor = folder.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ReportFolderError(
                f"cannot create report folder {folder}: {ancestor} is not a folder; {_FIX}"
            )
        _check_writable(folder, ancestor)
    except OSError as exc:  # e.g. a folder that cannot be listed
        raise ReportFolderError(f"cannot use report folder {folder}: {_reason(exc)}") from None


def foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` a report did not write: anything but :data:`REPORT_FILES` and PNG
    files in :data:`ERROR_MAPS` (as ``error_maps/NAME``)."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name == ERROR_MAPS and entry.is_dir() and not entry.is_symlink():
            foreign += [
                f"{ERROR_MAPS}/{png.name}"
                for png in sorted(entry.iterdir())
                if png.suffix != ".png" or not png.is_file() or png.is_symlink()
            ]
        elif entry.name not in REPORT_FILES or not entry.is_file() or entry.is_symlink():
            foreign.append(entry.name)
    return foreign


def holds_report(folder: Path) -> bool:
    """Whether ``folder`` holds anything (an earlier report, after :func:`check_report_folder`)."""
    return folder.is_dir() and any(folder.iterdir())


def replace_report_folder(folder: Path, write: Callable[[Path], T]) -> T:
    """Write a report with ``write(tmp)`` and swap it in for ``folder`` once complete.

    Raises:
        ReportFolderError: (exit 2) the folder was refused (:func:`check_report_folder`) or the
            OS failed the write or the swap (the reason named); ``folder`` is then as it was.
    """
    check_report_folder(folder)
    try:
        return replace_folder(folder, write)
    except OSError as exc:
        raise ReportFolderError(f"cannot write report folder {folder}: {_reason(exc)}") from None


def _check_writable(folder: Path, parent: Path) -> None:
    """The report is staged in ``parent`` and renamed there: it must be writable."""
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportFolderError(
            f"cannot write report folder {folder}: {parent} is not writable (permission denied); "
            f"{_FIX}"
        )


def _reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
