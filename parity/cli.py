"""``python -m parity``: check, reference, import-keras, import-reference, trace, bisect. Parses arguments and maps errors to exit codes.

Exit codes: :class:`ptycho_torch.errors.ExitCode`, shared by every CLI through
:func:`ptycho_torch.cli.run_cli`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptycho_torch.cli import ExitCode, run_cli
from ptycho_torch.cli_options import ConfigOptions

if TYPE_CHECKING:
    from parity.check import CheckOptions
    from ptycho_torch.threads import ThreadChoice

__all__ = [
    "add_check_arguments",
    "check_options",
    "configure_logging",
    "main",
    "run_check_command",
]


def configure_logging(verbose: bool = False) -> None:
    """Progress lines on stderr; quiet the frameworks' own chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    for noisy in (
        "torch",
        "onnxscript",
        "onnx_ir",
        "tensorflow",
        "absl",
        "lightning",
        "matplotlib",
        "PIL",
    ):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _check_options() -> tuple[ConfigOptions[Any], ConfigOptions[Any]]:
    from parity.check import CheckOptions  # imports nothing heavy until a check runs

    shared = ConfigOptions(
        CheckOptions,
        fields=("device", "tolerances", "report_dir", "calibrate", "tf_twin", "threads"),
    )
    full = ConfigOptions(
        CheckOptions, fields=("reference", "inputs", "checkpoint", "repro", *shared.fields)
    )
    return shared, full


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The check options ``export build`` passes on (defaults and help on ``CheckOptions``)."""
    _check_options()[0].add_to(parser)


def check_options(args: argparse.Namespace, artifacts: Path, *, full: bool = False) -> CheckOptions:
    """The :class:`parity.check.CheckOptions` of parsed arguments (exit 2 on a bad value).

    ``export build`` calls it before building, so a bad check option fails before any work.
    """
    options: CheckOptions = _check_options()[1 if full else 0].build(args, artifacts=artifacts)
    return options


def run_check_command(
    args: argparse.Namespace,
    artifacts: Path,
    *,
    full: bool = False,
    threads: ThreadChoice | None = None,
) -> int:
    """Run the check from parsed arguments; print the verdict; return the exit code.

    Args:
        args: parsed options (``add_check_arguments``'s, or all of ``parity check``'s).
        artifacts: the artifacts folder.
        full: ``args`` come from ``parity check`` (also ``--reference``, ``--inputs``,
            ``--checkpoint``), not from ``export build`` where those names mean the build's.
        threads: the thread choice ``export build`` already applied; None: apply ``--threads``
            here, before the check starts.
    """
    from parity.check import run_check
    from ptycho_torch.threads import set_threads

    options = check_options(args, artifacts, full=full)
    if threads is None:  # once per process, before any work
        threads = set_threads(options.threads)
    report = run_check(options, threads.to_dict())
    report_dir = options.report_dir or artifacts / "report"
    failed = [c for c in report.comparisons if c.status != "pass"]
    print(
        f"parity {report.verdict.upper()}: {len(report.comparisons) - len(failed)}/{len(report.comparisons)} "
        f"comparisons passed; reports in {report_dir}/ (report.md, report.html, report.json, junit.xml)"
    )
    for note in report.notes:
        print(f"note: {note}")
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity",
        description="Parity of exported PtychoPINN artifacts against the TensorFlow reference.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check", help="compare every backend against the reference and write reports"
    )
    check.add_argument(
        "--artifacts", type=Path, required=True, help="folder written by `python -m export build`"
    )
    _check_options()[1].add_to(check)
    ref = sub.add_parser(
        "reference", help="run the TensorFlow twin and write reference.npz + reference.json"
    )
    ref.add_argument("--checkpoint", type=Path, required=True)
    ref.add_argument(
        "--inputs", type=Path, required=True, help="feed NPZ (e.g. ARTIFACTS/inputs.npz)"
    )
    ref.add_argument(
        "--out",
        type=Path,
        required=True,
        help="reference.npz to write (provenance goes beside it as .json)",
    )
    ref.add_argument("--head", choices=["object", "physics"], default="object")
    keras = sub.add_parser(
        "import-keras",
        help="convert a Keras weights file of this architecture into a PyTorch model file",
    )
    keras.add_argument(
        "--weights", type=Path, required=True, help="Keras .weights.h5 written from the twin layout"
    )
    keras.add_argument(
        "--config", type=Path, required=True, help="JSON file with the ModelConfig fields"
    )
    keras.add_argument(
        "--out", type=Path, required=True, help="model file for --checkpoint of `export build`"
    )
    imp = sub.add_parser(
        "import-reference",
        help="turn arrays written by the original TensorFlow PtychoPINN into reference.npz "
        "+ reference.json and a feed NPZ",
    )
    imp.add_argument(
        "--from",
        dest="source",
        nargs=2,
        metavar=("KIND", "DIR"),
        required=True,
        help="ptychopinn-tf and a case folder of the original (config.json, inputs.npz, outputs.npz)",
    )
    imp.add_argument(
        "--out",
        type=Path,
        required=True,
        help="reference.npz to write (provenance goes beside it as .json)",
    )
    imp.add_argument(
        "--head",
        choices=["object", "physics"],
        default="object",
        help="head the reference is for (one reference per head; default: object)",
    )
    imp.add_argument(
        "--checkpoint",
        type=Path,
        help="the model imported from the same case (python -m ptycho_torch.import_tf); "
        "without it the reference has no weights digest and parity stops as stale (exit 4)",
    )
    imp.add_argument(
        "--inputs-out",
        type=Path,
        help="feed NPZ to write, for `export build --inputs` (default: inputs.npz beside --out)",
    )
    trace = sub.add_parser(
        "trace",
        help="dtype, device, shape, range and NaN/Inf of every module call of the eager model, "
        "marking the first non-float32 tensor and the user line that fed it",
    )
    trace.add_argument("--checkpoint", type=Path, required=True, help="model file or .ckpt")
    trace.add_argument(
        "--inputs", type=Path, required=True, help="NPZ whose 'diffraction' is fed as stored"
    )
    trace.add_argument("--json", type=Path, help="also write the trace as JSON")
    bis = sub.add_parser(
        "bisect",
        help="run two backends to every layer boundary of the network on one batch and name the "
        "first boundary where their difference jumps beyond the noise upstream of it",
    )
    bis.add_argument(
        "--artifacts", type=Path, required=True, help="folder written by `python -m export build`"
    )
    bis.add_argument(
        "--pair",
        default="eager:onnxruntime",
        help="LEFT:RIGHT, each of eager, exported-program (or pt2), onnxruntime, tf-twin "
        "(default: eager:onnxruntime)",
    )
    bis.add_argument(
        "--inputs", type=Path, help="inputs NPZ (default: ARTIFACTS/inputs.npz, or a repro's)"
    )
    bis.add_argument(
        "--sample",
        type=int,
        default=0,
        help="bisect the artifact-sized batch holding this sample (a report's worst sample)",
    )
    bis.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    bis.add_argument("--json", type=Path, help="also write the per-boundary errors as JSON")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return run_cli(lambda: _dispatch(args), configure_logging=False)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return run_check_command(args, args.artifacts, full=True)
    if args.command == "reference":
        from parity.tf_twin.generate import generate_reference

        reference = generate_reference(args.checkpoint, args.inputs, args.out, head=args.head)
        print(
            f"wrote {args.out} and {args.out.with_suffix('.json').name} "
            f"(weights {reference.provenance['weights_sha256'][:12]}, inputs {reference.provenance['inputs_sha256'][:12]})"
        )
        return ExitCode.PASS
    if args.command == "import-keras":
        return _import_keras(args)
    if args.command == "import-reference":
        return _import_reference(args)
    if args.command == "trace":
        return _trace(args)
    if args.command == "bisect":
        return _bisect(args)
    raise AssertionError(args.command)


def _import_keras(args: argparse.Namespace) -> int:
    from parity.import_keras import ImportKerasOptions, import_keras

    import_keras(ImportKerasOptions(args.weights, args.config, args.out))
    print(f"wrote {args.out}")
    return ExitCode.PASS


def _import_reference(args: argparse.Namespace) -> int:
    from parity.errors import ParityError
    from parity.import_reference import SOURCE_KINDS, import_reference

    kind, folder = args.source
    if kind not in SOURCE_KINDS:
        raise ParityError(f"--from {kind!r}: known kinds are {list(SOURCE_KINDS)}")
    reference, feed = import_reference(
        folder, args.out, args.head, args.checkpoint, args.inputs_out
    )
    prov = reference.provenance
    weights = prov["weights_sha256"]
    shapes = ", ".join(f"{k} float32{list(v.shape)}" for k, v in reference.outputs.items())
    print(
        f"wrote {args.out} and {args.out.with_suffix('.json').name}: {prov['head']} head of "
        f"case {prov['case']} ({shapes}; weights {weights[:12] if weights else 'UNKNOWN'}, "
        f"inputs {prov['inputs_sha256'][:12]})"
    )
    print(f"wrote feed {feed}")
    if not weights:
        print(
            "note: no --checkpoint, so no weights digest: parity against this reference stops "
            "as stale (exit 4) until it is re-imported with --checkpoint"
        )
    print(
        f"next: python -m export build --checkpoint {args.checkpoint or 'MODEL.pt'} "
        f"--inputs {feed} --reference {args.out} --head {prov['head']} --out DIR"
    )
    return ExitCode.PASS


def _trace(args: argparse.Namespace) -> int:
    """Print the trace table; exit 1 when a non-float32 tensor reached a module, else 0."""
    import json

    from parity.trace import trace_inference

    trace, error = trace_inference(args.checkpoint, args.inputs)
    print(trace.table())
    if error:
        print(f"the model raised: {error}")
    if args.json:
        args.json.write_text(json.dumps({**trace.to_dict(), "error": error}, indent=2) + "\n")
    return ExitCode.PARITY_FAILURE if trace.first_violation() is not None else ExitCode.PASS


def _bisect(args: argparse.Namespace) -> int:
    """Print the per-boundary table; exit 1 when a boundary jumps, else 0."""
    import json

    from parity.bisect import bisect, parse_pair

    result = bisect(
        args.artifacts,
        parse_pair(args.pair),
        inputs=args.inputs,
        sample=args.sample,
        device=args.device,
    )
    print(result.table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return ExitCode.PARITY_FAILURE if result.first_jump is not None else ExitCode.PASS
