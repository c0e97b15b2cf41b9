"""What a parity check will write, refused before anything is read or written: the report
folder (replaced whole by each check), a ``--repro`` folder and a ``--calibrate`` file."""

from __future__ import annotations

import os
from pathlib import Path

from parity.errors import ParityError
from parity.repro import check_repro_target

__all__ = ["check_write_targets"]


def check_write_targets(report_dir: Path, repro: Path | None, calibrate: Path | None) -> None:
    """Refuse what the check could not write to.

    Raises:
        ParityError: (exit 2) a ``--repro`` folder that is not empty; a ``--repro`` or
            ``--calibrate`` path overlapping the report folder; a ``--calibrate`` file that
            cannot be written.
        ReportFolderError: (exit 2) the report folder is a file, cannot be written, or holds
            files this tool did not write.
    """
    from parity.report.folder import check_report_folder

    check_report_folder(report_dir)
    for flag, path in (("--repro", repro), ("--calibrate", calibrate)):
        if path is not None and _overlaps(path, report_dir, both_ways=flag == "--repro"):
            raise ParityError(
                f"{flag} {path} overlaps the report folder {report_dir}, which each check "
                f"replaces whole; give {flag} a path outside it (or move the report with "
                "--report-dir)"
            )
    if repro is not None:
        check_repro_target(repro)
    if calibrate is not None:
        _check_file_target("--calibrate", calibrate)


def _check_file_target(flag: str, path: Path) -> None:
    """A file the check will write at the end: refused now if it cannot be one."""
    if path.is_dir():
        raise ParityError(f"{flag} {path} is a folder; give the path of a JSON file to write")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ParityError(f"{flag} {path}: its folder {parent} {what}; create it or choose another")
    if not os.access(parent, os.W_OK):
        raise ParityError(f"{flag} {path}: its folder {parent} is not writable; choose another")


def _overlaps(path: Path, folder: Path, *, both_ways: bool) -> bool:
    """Whether ``path`` is ``folder`` or inside it (or, ``both_ways``, holds it)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents or (both_ways and path in folder.parents)
