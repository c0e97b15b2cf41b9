"""What a parity check writes, swapped in whole for its report folder (:mod:`parity.report.folder`):
the report's views (:mod:`parity.report`) and the error maps of every pair against the reference
and of every failing pair, or, for a check that stopped before comparing, an ERROR report; the
bisect command a failing pair adds to its notes; and the targets refused before anything is read
or written (the report folder, a ``--repro`` folder, a ``--calibrate`` file).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from core.output_comparison import OutputComparison
from export.manifest import read_manifest
from export.signature import Signature
from parity.errors import ParityError, ReportFolderError
from parity.pairs import Pair
from parity.precision import environment_fingerprint
from parity.repro import bisect_command, check_repro_target
from parity.results import ParityReport
from parity.runners import Backend
from ptycho_torch.atomic import unwritable_file
from ptycho_torch.errors import ExitCode, ToolError

__all__ = [
    "check_write_targets",
    "failure_notes",
    "write_check_report",
    "write_error_report",
]

log = logging.getLogger(__name__)


def write_error_report(
    artifacts: Path, report_dir: Path, exc: ToolError, threads: dict[str, Any] | None
) -> None:
    """The ERROR report of a check that stopped (exit 2, 3 or 4), so that CI shows why; exit 2
    (the user's input) never replaces an earlier report."""
    from parity.report import holds_report, replace_report_folder, write_all

    if not artifacts.is_dir():
        return  # nowhere sensible to write: the error line is all there is
    if exc.exit_code == ExitCode.USAGE and holds_report(report_dir):
        log.warning(
            "%s keeps the previous report: input errors (exit 2) never replace one", report_dir
        )
        return
    report = ParityReport(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        head=_head_of(artifacts),
        artifacts_dir=str(artifacts),
        verdict="error",
        exit_code=int(exc.exit_code),
        environment=environment_fingerprint(threads),
        error=str(exc),
    )
    try:
        replace_report_folder(report_dir, lambda folder: write_all(report, folder))
    except ReportFolderError as write_exc:
        log.warning("could not write the error report: %s", write_exc)


def _head_of(artifacts: Path) -> str:
    try:
        return read_manifest(artifacts, verify=False).head
    except ToolError:
        return "unknown"


def failure_notes(
    artifacts: Path, pairs: list[Pair], comparisons: list[OutputComparison]
) -> list[str]:
    """For each failing pair, the bisect command that finds the layer where its sides part."""
    notes = []
    for pair in pairs:
        failed = _failed(pair, comparisons)
        if not failed:
            continue
        sample = failed[0].worst_sample or 0
        command = bisect_command(
            artifacts, pair.left.backend, pair.right.backend, sample, pair.device
        )
        if command is None:
            eager, onnx = Backend.EAGER, Backend.ONNXRUNTIME
            command = bisect_command(artifacts, eager, onnx, sample, pair.device)
            notes.append(
                f"{pair.left.name} vs {pair.right.name} failed; a compiled program cannot be "
                f"stopped at a layer: `{command}` shows whether the export lost a layer"
            )
        else:
            notes.append(f"{pair.left.name} vs {pair.right.name} failed; find where: `{command}`")
    return notes


def _failed(pair: Pair, comparisons: list[OutputComparison]) -> list[OutputComparison]:
    names = (pair.left.name, pair.right.name)
    return [c for c in comparisons if (c.left, c.right) == names and c.status != "pass"]


def write_check_report(
    report: ParityReport, report_dir: Path, pairs: list[Pair], signature: Signature
) -> None:
    """Write the report and its error maps into a temporary folder, then swap it in whole."""
    from parity.report import replace_report_folder

    replace_report_folder(
        report_dir, lambda folder: _write_report_files(report, folder, pairs, signature)
    )


def _write_report_files(
    report: ParityReport, folder: Path, pairs: list[Pair], signature: Signature
) -> None:
    from parity.report import error_map_filename, render_error_map, write_all

    maps_dir = folder / "error_maps"
    maps_dir.mkdir(exist_ok=True)
    for pair in pairs:
        if pair.pair_class != "vs-reference" and not _failed(pair, report.comparisons):
            continue  # maps for every runner vs the reference, and for failing pairs
        for name, (err, sample, left, right) in pair.worst.items():
            png = maps_dir / error_map_filename(name, pair.left.name, pair.right.name, sample)
            render_error_map(
                left,
                right,
                signature.output(name).wraps,
                f"{name}: {pair.left.name} vs {pair.right.name}, sample {sample} (max err {err:.2e})",
                png,
            )
            report.error_maps.append(
                {
                    "output": name,
                    "left": pair.left.name,
                    "right": pair.right.name,
                    "sample": sample,
                    "png": str(png.relative_to(folder)),
                }
            )
    write_all(report, folder)


def check_write_targets(report_dir: Path, repro: Path | None, calibrate: Path | None) -> None:
    """Refuse (exit 2) a report folder that cannot take a report, a ``--repro`` folder that is
    not empty, a ``--calibrate`` file that cannot be written, and a ``--repro`` or
    ``--calibrate`` path overlapping the report folder."""
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
    problem = unwritable_file(path)
    if problem is not None:
        raise ParityError(f"{flag} {path}: {problem}")


def _overlaps(path: Path, folder: Path, *, both_ways: bool) -> bool:
    """Whether ``path`` is ``folder`` or inside it (or, ``both_ways``, holds it)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents or (both_ways and path in folder.parents)
