"""One parity run: every runner on the same batch, every output compared, reports written.

The steps: targets refused before anything is read (:func:`check_targets`), freshness
(:mod:`parity.provenance`), runners, pairs and tolerances (:mod:`parity.pairs`), the chunked pass
(:mod:`parity.streaming`: memory bounded by one chunk of the artifacts' fixed batch), then the
report (:mod:`parity.check_report`).
"""

from __future__ import annotations

import datetime as _dt
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.output_comparison import OutputComparison
from export.errors import ReferenceFormatError
from export.manifest import Manifest, read_manifest
from export.signature import Signature
from parity.calibrate import calibrate
from parity.check_report import (
    check_write_targets,
    failure_notes,
    write_check_report,
    write_error_report,
)
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
from parity.repro import write_repro
from parity.results import ParityReport
from parity.runners import Runner
from parity.streaming import output_peaks, stream
from ptycho_torch.errors import ToolError
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
    """``auto`` -> cpu (+ cuda when torch and ONNX Runtime both have it); ``cuda`` -> cpu + cuda;
    ``cpu`` -> cpu (any other value is refused by :func:`check_targets`)."""
    if device != "auto":
        return ["cpu", "cuda"] if device == "cuda" else ["cpu"]
    import onnxruntime as ort
    import torch

    has_cuda = (
        torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
    )
    return ["cpu", "cuda"] if has_cuda else ["cpu"]


def report_dir_of(options: CheckOptions) -> Path:
    """``--report-dir``, else ``ARTIFACTS/report``."""
    return options.report_dir or options.artifacts / "report"


def check_targets(options: CheckOptions) -> None:
    """Refuse, before anything is read or written, a bad ``--device`` and what the check could
    not write to (:func:`parity.check_report.check_write_targets`); exit 2."""
    if options.device not in DEVICES:
        raise ParityError(f"--device must be one of {', '.join(DEVICES)}, got {options.device!r}")
    check_write_targets(report_dir_of(options), options.repro, options.calibrate)


def run_check(options: CheckOptions, threads: dict[str, Any] | None = None) -> ParityReport:
    """Run the parity check and write the reports, the report folder replaced whole once the new
    report is complete. ``threads`` (how torch's thread count was chosen, applied by the caller)
    is recorded in the report's environment.

    A run that stops after :func:`check_targets`, before comparing, writes an ERROR report
    saying why, except that exit 2 (the user's input) never replaces an earlier report.

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
        write_error_report(options.artifacts, report_dir_of(options), exc, threads)
        raise


def _run_check(options: CheckOptions, threads: dict[str, Any] | None) -> ParityReport:
    precision = apply_precision_policy()
    manifest = read_manifest(options.artifacts)  # every file checked: missing or changed is exit 4
    signature = Signature.from_dict(manifest.signature)
    reference = _find_reference(options)
    notes = [] if reference else ["no TensorFlow reference: compared backends pairwise only"]
    unavailable: list[str] = []  # requested runners that did not come up (--device cuda)
    runners, pairs, comparisons = _compare(
        options, manifest, signature, reference, notes, unavailable, threads
    )
    for comparison in comparisons:
        log.info("%s", comparison.log_line())
    failed = any(c.status != "pass" for c in comparisons)
    report = ParityReport(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        head=signature.head,
        artifacts_dir=str(options.artifacts),
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
    write_check_report(report, report_dir_of(options), pairs, signature)
    if options.calibrate is not None:
        calibrated, calibration_notes = calibrate(comparisons)
        calibrated.save(options.calibrate)
        log.info("calibrated tolerances written to %s (%s)", options.calibrate, calibration_notes)
    return report


def _compare(
    options: CheckOptions,
    manifest: Manifest,
    signature: Signature,
    reference: ReferenceFile | None,
    notes: list[str],
    unavailable: list[str],
    threads: dict[str, Any] | None,
) -> tuple[list[Runner], list[Pair], list[OutputComparison]]:
    """Every pair compared on every chunk; then, while the runners are active, the notes of
    failing pairs and the ``--repro`` reproducer."""
    artifacts = options.artifacts
    inputs_path = options.inputs or artifacts / "inputs.npz"
    checkpoint = options.checkpoint or manifest.weights_path(artifacts)
    table = tolerance_table(options.tolerances, reference)
    devices = resolve_devices(options.device)
    log.info("parity: %s head, devices %s, inputs %s", signature.head, devices, inputs_path)
    with NpzRowReader(inputs_path, "inputs file") as inputs, ExitStack() as stack:
        n = _fresh_samples(inputs, signature, reference, manifest, checkpoint)
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
        notes.extend(failure_notes(artifacts, pairs, comparisons))
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
    return runners, pairs, comparisons


def _fresh_samples(
    inputs: NpzRowReader,
    signature: Signature,
    reference: ReferenceFile | None,
    manifest: Manifest,
    checkpoint: Path,
) -> int:
    """The number of input samples, once inputs, reference and checkpoint are fresh."""
    n = check_inputs(inputs, signature)
    if reference is not None:
        check_reference_layout(reference, signature, n)
        inputs_sha = inputs_sha256(inputs, signature.input_names)
        check_reference_fresh(reference.provenance, manifest, inputs_sha, reference.path)
    check_weights(checkpoint, manifest)
    return n


def _find_reference(options: CheckOptions) -> ReferenceFile | None:
    """``--reference``, else ``ARTIFACTS/reference.npz`` when there is one (headers only)."""
    path = options.reference or options.artifacts / "reference.npz"
    if path.is_file():
        return load_reference(path)
    if options.reference is not None:
        raise ReferenceFormatError(f"reference {path} does not exist")
    return None
