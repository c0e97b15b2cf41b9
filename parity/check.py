"""One parity run: every runner on the same batch, every output compared, reports written.

The steps, each in its own module: the targets it will write (:func:`check_targets`, before
anything is read), freshness of inputs, reference and checkpoint (:mod:`parity.provenance`),
runners, pairs and tolerances (:mod:`parity.pairs`), the chunked pass over the inputs
(:mod:`parity.streaming`), then the report, swapped in whole for the report folder
(:mod:`parity.report`). Memory stays bounded by one chunk of the artifacts' fixed batch, however
many samples the set holds.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.output_comparison import OutputComparison
from export.errors import ReferenceFormatError
from export.manifest import read_manifest
from export.signature import Signature
from parity.calibrate import calibrate
from parity.errors import ParityError, ReportFolderError
from parity.pairs import Pair, activate_runners, make_pairs, make_runners, tolerance_table
from parity.precision import apply_precision_policy, environment_fingerprint
from parity.provenance import (
    check_inputs,
    check_reference_fresh,
    check_reference_layout,
    check_weights,
    inputs_sha256,
)
from parity.reference import ReferenceFile, load_reference
from parity.repro import bisect_command, check_repro_target, write_repro
from parity.results import ParityReport
from parity.runners import Backend
from parity.streaming import output_peaks, stream
from ptycho_torch.errors import ExitCode, ToolError
from ptycho_torch.npz import NpzRowReader
from ptycho_torch.thread_option import THREADS_HELP, parse_threads

__all__ = [
    "DEVICES",
    "CheckOptions",
    "check_targets",
    "report_dir_of",
    "resolve_devices",
    "run_check",
]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class CheckOptions:
    """What ``python -m export check`` was asked to do (``--threads``: :mod:`ptychopinn.command`)."""

    artifacts: Path = field(metadata={"help": "folder written by `python -m export build`"})
    reference: Path | None = field(
        default=None, metadata={"help": "reference.npz (default: ARTIFACTS/reference.npz)"}
    )
    inputs: Path | None = field(
        default=None,
        metadata={"help": "inputs NPZ (default: ARTIFACTS/inputs.npz); may hold many batches"},
    )
    checkpoint: Path | None = field(
        default=None,
        metadata={"help": "checkpoint for the eager runner (default: ARTIFACTS/weights.pt)"},
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "auto: cpu, plus cuda when torch and ONNX Runtime both have it; "
            "cuda: cpu and cuda, exit 3 if CUDA is unavailable",
            "choices": DEVICES,
        },
    )
    tolerances: Path | None = field(
        default=None, metadata={"help": "JSON file overriding the default tolerance table"}
    )
    report_dir: Path | None = field(
        default=None,
        metadata={
            "help": "where report.{json,md,html}, junit.xml and error_maps/ go (default: "
            "ARTIFACTS/report); each check replaces the whole folder, so it may hold nothing else"
        },
    )
    calibrate: Path | None = field(
        default=None,
        metadata={"help": "also measure each pair's noise floor and write a tolerances file"},
    )
    tf_twin: bool = field(
        default=False,
        metadata={"help": "also run the live TensorFlow twin (needs the 'tf' extra)"},
    )
    threads: str = field(default="auto", metadata={"help": THREADS_HELP})
    repro: Path | None = field(
        default=None,
        metadata={
            "help": "on a failing check, write a self-contained reproducer folder here (inputs "
            "batch, both sides' outputs, model.onnx, tolerance, environment, rerun.py)"
        },
    )

    def __post_init__(self) -> None:
        parse_threads(self.threads)  # ValueError naming the accepted values: exit 2 on the CLI


def resolve_devices(device: str) -> list[str]:
    """``auto`` -> cpu (+ cuda when torch and ONNX Runtime both have it); ``cuda`` -> cpu + cuda."""
    if device == "cpu":
        return ["cpu"]
    if device == "cuda":
        return ["cpu", "cuda"]
    if device == "auto":
        import onnxruntime as ort
        import torch

        has_cuda = (
            torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
        )
        return ["cpu", "cuda"] if has_cuda else ["cpu"]
    raise ParityError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")


def report_dir_of(options: CheckOptions) -> Path:
    """``--report-dir``, else ``ARTIFACTS/report``."""
    return options.report_dir or options.artifacts / "report"


def check_targets(options: CheckOptions) -> None:
    """Refuse, before anything is read or written, what the check could not write to.

    Raises:
        ParityError: (exit 2) a ``--device`` that is not one of :data:`DEVICES`; a ``--repro``
            folder that is not empty; a ``--repro`` or ``--calibrate`` path overlapping the
            report folder (which each check replaces whole).
        ReportFolderError: (exit 2) the report folder is a file, cannot be written, or holds
            files this tool did not write.
    """
    from parity.report.folder import check_report_folder

    if options.device not in DEVICES:
        raise ParityError(f"--device must be one of {', '.join(DEVICES)}, got {options.device!r}")
    report_dir = report_dir_of(options)
    check_report_folder(report_dir)
    for flag, path in (("--repro", options.repro), ("--calibrate", options.calibrate)):
        if path is not None and _overlaps(path, report_dir, both_ways=flag == "--repro"):
            raise ParityError(
                f"{flag} {path} overlaps the report folder {report_dir}, which each check "
                f"replaces whole; give {flag} a path outside it (or move the report with "
                "--report-dir)"
            )
    if options.repro is not None:
        check_repro_target(options.repro)
    if options.calibrate is not None:
        _check_file_target("--calibrate", options.calibrate)


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


def run_check(options: CheckOptions, threads: dict[str, Any] | None = None) -> ParityReport:
    """Run the parity check and write the reports.

    ``threads``: how torch's thread count was chosen (:meth:`ptycho_torch.threads.ThreadChoice.to_dict`),
    recorded in the report's environment; the caller applies ``options.threads`` (once per
    process, before any work: ``ptychopinn.parity``), this function does not change it.

    The report folder is replaced whole, only once the new report is complete
    (:mod:`parity.report.folder`). Nothing is written before :func:`check_targets` passes: a
    refused option leaves every file as it was. A run that stops later, before comparing, writes
    an ERROR report (``report.json``, ``report.md``, ``report.html``, ``junit.xml``) stating the
    error, so a CI job that exits 2, 3 or 4 shows why; but exit 2 (the user's input) never
    replaces an earlier report: it writes one only where there was none. Then the error is
    raised.

    Raises:
        ParityError: exit 2 (bad input), 3 (``EnvironmentUnavailable``) or 4
            (``StaleReferenceError``, ``WeightsMismatchError``).
        ReportFolderError: (exit 2) the report folder cannot take the report.
        ArtifactsChangedError: (exit 4) an artifact is missing or changed since the build.
    """
    check_targets(options)  # refused here: nothing read, nothing written, no error report
    try:
        return _run_check(options, threads)
    except ReportFolderError:
        raise  # the report folder itself failed: nothing more is tried there
    except ToolError as exc:
        _write_error_report(options, exc, threads)
        raise


def _write_error_report(
    options: CheckOptions, exc: ToolError, threads: dict[str, Any] | None
) -> None:
    from parity.report import holds_report, replace_report_folder, write_all

    report_dir = report_dir_of(options)
    if not options.artifacts.is_dir():
        return  # nowhere sensible to write: the error line is all there is
    if exc.exit_code == ExitCode.USAGE and holds_report(report_dir):
        log.warning(
            "%s keeps the previous report: input errors (exit 2) never replace one", report_dir
        )
        return
    report = ParityReport(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        head=_head_of(options.artifacts),
        artifacts_dir=str(options.artifacts),
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


def _run_check(options: CheckOptions, threads: dict[str, Any] | None) -> ParityReport:
    precision = apply_precision_policy()
    artifacts = options.artifacts
    manifest = read_manifest(artifacts)  # every file checked: missing or changed is exit 4
    signature = Signature.from_dict(manifest.signature)
    inputs_path = options.inputs or artifacts / "inputs.npz"
    checkpoint = options.checkpoint or manifest.weights_path(artifacts)
    reference = _find_reference(options)
    table = tolerance_table(options.tolerances, reference)
    devices = resolve_devices(options.device)
    log.info("parity: %s head, devices %s, inputs %s", signature.head, devices, inputs_path)
    notes = [] if reference else ["no TensorFlow reference: compared backends pairwise only"]
    unavailable: list[str] = []  # requested runners that did not come up (--device cuda)

    with NpzRowReader(inputs_path, "inputs file") as inputs, ExitStack() as stack:
        n = check_inputs(inputs, signature)
        if reference is not None:
            check_reference_layout(reference, signature, n)
            inputs_sha = inputs_sha256(inputs, signature.input_names)
            check_reference_fresh(reference.provenance, manifest, inputs_sha, reference.path)
        check_weights(checkpoint, manifest)
        runners = make_runners(
            artifacts, checkpoint, signature, devices, reference, options.tf_twin
        )
        runners = activate_runners(stack, runners, options.device, notes, unavailable)
        peaks = output_peaks(inputs, n, signature, runners, table)
        pairs = make_pairs(runners, table, signature, peaks)
        stream(inputs, n, signature, runners, pairs)
        comparisons = [
            p.accumulators[name].finish() for p in pairs for name in signature.output_names
        ]
        notes.extend(_bisect_notes(artifacts, pairs, comparisons))
        if options.repro is not None:  # while the runners are still active
            written = write_repro(
                options.repro,
                artifacts=artifacts,
                signature=signature,
                inputs=inputs,
                n=n,
                pairs=pairs,
                comparisons=comparisons,
                environment=environment_fingerprint(threads),
            )
            if written is not None:
                notes.append(f"reproducer written to {written} (run: python {written}/rerun.py)")

    for comparison in comparisons:
        log.info("%s", comparison.log_line())
    failed = any(c.status != "pass" for c in comparisons)
    report = ParityReport(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        head=signature.head,
        artifacts_dir=str(artifacts),
        verdict="fail" if failed or unavailable else "pass",
        # a requested backend that did not come up is exit 3 (environment), never a pass
        exit_code=1 if failed else (3 if unavailable else 0),
        environment=environment_fingerprint(threads),
        precision=precision,
        reference_provenance=dict(reference.provenance) if reference else {},
        runners=[r.info() for r in runners],
        comparisons=comparisons,
        notes=notes,
        error_maps=[],
    )
    _write_reports(report, report_dir_of(options), pairs, signature)
    if options.calibrate is not None:
        _calibrate(comparisons, options.calibrate)
    return report


def _bisect_notes(
    artifacts: Path, pairs: list[Pair], comparisons: list[OutputComparison]
) -> list[str]:
    """For each failing pair, the bisect command that finds the layer where its sides part."""
    notes = []
    for pair in pairs:
        failed = [
            c
            for c in comparisons
            if (c.left, c.right) == (pair.left.name, pair.right.name) and c.status != "pass"
        ]
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


def _find_reference(options: CheckOptions) -> ReferenceFile | None:
    """``--reference``, else ``ARTIFACTS/reference.npz`` when there is one (headers only)."""
    path = options.reference or options.artifacts / "reference.npz"
    if path.is_file():
        return load_reference(path)
    if options.reference is not None:
        raise ReferenceFormatError(f"reference {path} does not exist")
    return None


def _calibrate(comparisons: list[OutputComparison], out: Path) -> None:
    calibrated, notes = calibrate(comparisons)
    calibrated.save(out)
    log.info("calibrated tolerances written to %s (%s)", out, notes)


def _write_reports(
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
        if pair.pair_class != "vs-reference" and not any(
            c.status != "pass"
            for c in report.comparisons
            if c.left == pair.left.name and c.right == pair.right.name
        ):
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
