"""``check``, ``reference``, ``trace`` and ``bisect``: the parity check, the TensorFlow twin's
reference, and the two diagnostics. ``build`` runs the check after the build with the options
it shares (:func:`add_check_arguments`).

Every option comes from an option dataclass of the module that owns the behaviour
(:class:`parity.check.CheckOptions`, :class:`parity.tf_twin.generate.ReferenceOptions`,
:class:`parity.trace.TraceOptions`, :class:`parity.bisect.BisectOptions`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.bisect import BisectOptions
from parity.check import CheckOptions
from parity.tf_twin.generate import ReferenceOptions
from ptycho_torch.errors import ExitCode
from ptycho_torch.jsonio import write_json
from ptychopinn.command import CommandLine, add_threads_option
from ptychopinn.options import ConfigOptions

if TYPE_CHECKING:
    from ptycho_torch.threads import ThreadChoice

__all__ = [
    "BISECT",
    "CHECK",
    "REFERENCE",
    "TRACE",
    "add_check_arguments",
    "check_options",
    "run_check",
]

_SHARED = ("device", "tolerances", "report_dir", "calibrate", "tf_twin")
SHARED_CHECK_OPTIONS = ConfigOptions(CheckOptions, fields=_SHARED)
CHECK_OPTIONS = ConfigOptions(
    CheckOptions, fields=("artifacts", "reference", "inputs", "checkpoint", "repro", *_SHARED)
)
REFERENCE_OPTIONS = ConfigOptions(ReferenceOptions)
BISECT_OPTIONS = ConfigOptions(BisectOptions)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The check options ``build`` passes on (defaults and help on ``CheckOptions``)."""
    SHARED_CHECK_OPTIONS.add_to(parser)
    add_threads_option(parser)


def check_options(args: argparse.Namespace, artifacts: Path | None = None) -> CheckOptions:
    """The check's options from parsed arguments (exit 2 on a bad value).

    Args:
        args: all of ``check``'s options, or the ones ``build`` shares.
        artifacts: the folder ``build`` writes; None: ``check``'s own ``--artifacts`` (and its
            ``--reference``, ``--inputs``, ``--checkpoint``, which mean the build's on ``build``).
    """
    if artifacts is None:
        options: CheckOptions = CHECK_OPTIONS.build(args, threads=args.threads)
    else:
        options = SHARED_CHECK_OPTIONS.build(args, artifacts=artifacts, threads=args.threads)
    return options


def run_check(options: CheckOptions, threads: ThreadChoice | None = None) -> int:
    """Run the check; print the verdict; return the exit code.

    Args:
        options: what to check.
        threads: the thread choice ``build`` already applied; None: apply ``options.threads``
            here, before the check starts (once per process).
    """
    from parity.check import run_check as check
    from ptycho_torch.threads import set_threads

    if threads is None:
        threads = set_threads(options.threads)
    report = check(options, threads.to_dict())
    report_dir = options.report_dir or options.artifacts / "report"
    failed = [c for c in report.comparisons if c.status != "pass"]
    print(
        f"parity {report.verdict.upper()}: {len(report.comparisons) - len(failed)}/{len(report.comparisons)} "
        f"comparisons passed; reports in {report_dir}/ (report.md, report.html, report.json, junit.xml)"
    )
    for note in report.notes:
        print(f"note: {note}")
    return report.exit_code


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    CHECK_OPTIONS.add_to(parser)
    add_threads_option(parser)


CHECK = CommandLine(
    "Compare eager PyTorch, every artifact and ONNX Runtime with the reference, pairwise too, "
    "and write report.md, report.html, report.json and junit.xml.",
    _check_arguments,
    lambda args: run_check(check_options(args)),
)


def _reference(args: argparse.Namespace) -> int:
    from parity.tf_twin.generate import generate_reference

    options: ReferenceOptions = REFERENCE_OPTIONS.build(args)
    reference = generate_reference(
        options.checkpoint, options.inputs, options.out, head=options.head
    )
    provenance = reference.provenance
    print(
        f"wrote {options.out} and {options.out.with_suffix('.json').name} "
        f"(weights {provenance['weights_sha256'][:12]}, inputs {provenance['inputs_sha256'][:12]})"
    )
    return ExitCode.PASS


REFERENCE = CommandLine(
    "Run the TensorFlow twin with a checkpoint's weights on a feed and write the reference "
    "(needs the 'tf' extra).",
    REFERENCE_OPTIONS.add_to,
    _reference,
)


def _trace_options() -> ConfigOptions[Any]:
    from parity.trace import TraceOptions  # imports torch: only when trace runs

    return ConfigOptions(TraceOptions)


def _trace(args: argparse.Namespace) -> int:
    """Print the trace table; exit 1 when a non-float32 tensor reached a module, else 0."""
    from parity.trace import trace_inference

    options = _trace_options().build(args)
    trace, error = trace_inference(options.checkpoint, options.inputs)
    print(trace.table())
    if error:
        print(f"the model raised: {error}")
    if options.json:
        write_json(options.json, {**trace.to_dict(), "error": error})
    return ExitCode.PARITY_FAILURE if trace.first_violation() is not None else ExitCode.PASS


TRACE = CommandLine(
    "Run the eager model on an NPZ's diffraction as stored and list every module call's "
    "dtype, device, shape, range and NaN/Inf.",
    lambda parser: _trace_options().add_to(parser),
    _trace,
)


def _bisect(args: argparse.Namespace) -> int:
    """Print the per-boundary table; exit 1 when a boundary jumps, else 0."""
    from parity.bisect import bisect, parse_pair

    options: BisectOptions = BISECT_OPTIONS.build(args)
    result = bisect(
        options.artifacts,
        parse_pair(options.pair),
        inputs=options.inputs,
        sample=options.sample,
        device=options.device,
    )
    print(result.table())
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(options.json, result.to_dict())
    return ExitCode.PARITY_FAILURE if result.first_jump is not None else ExitCode.PASS


BISECT = CommandLine(
    "Run two backends to every layer boundary on one batch and name the first boundary where "
    "their difference jumps beyond the noise upstream of it.",
    BISECT_OPTIONS.add_to,
    _bisect,
)
