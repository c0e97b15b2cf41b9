"""``python -m export build|triton|bench``: parse arguments, build, make the reference, run parity.

The composition of the three packages: ``export.build`` writes the artifacts, the TensorFlow
twin (``parity.tf_twin``) makes the reference when TensorFlow is installed, ``parity`` checks.
Errors become exit codes in ``ptycho_torch.cli.run_cli``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from export.options import BuildOptions
from ptycho_torch.cli_options import ConfigOptions

__all__ = ["main"]

BUILD = ConfigOptions(BuildOptions)
_HOST_COMMANDS = {
    "predict": "reconstruct a whole scan with ONNX Runtime, torch-free (python -m export predict -h)",
    "verify": "check a copied artifacts folder: hashes, then the parity batch with ONNX Runtime, "
    "torch-free (python -m export verify -h)",
    "pack": "write one self-contained .tar.gz of an artifacts folder (the published link "
    "followed) to copy to a host; verify and predict read it as it is, torch-free "
    "(python -m export pack -h)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export PtychoPINN with a fixed float32 signature and prove parity.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build",
        help="write model.ts, model.onnx, model.pt2, inputs.npz, reference and manifest.json, then run parity",
    )
    BUILD.add_to(b)  # every BuildOptions field; its default and help live on the field
    b.add_argument("--no-parity", action="store_true", help="skip the parity check after the build")
    from parity.cli import add_check_arguments

    add_check_arguments(b)
    for name, what in _HOST_COMMANDS.items():  # torch-free: export.host_cli parses their options
        host = sub.add_parser(name, help=what, add_help=False, prefix_chars="\0")
        host.add_argument("host_args", nargs=argparse.REMAINDER)
    bench = sub.add_parser(  # bench.cli parses its options
        "bench",
        help="throughput, latency and fraction of the GEMM ceiling per backend and batch size "
        "(python -m export bench -h)",
        add_help=False,
        prefix_chars="\0",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    t = sub.add_parser(
        "triton", help="write a Triton model repository (ONNX Runtime backend) from built artifacts"
    )
    t.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="folder written by `export build`"
    )
    t.add_argument(
        "--out", type=Path, default=Path("model_repository"), help="model repository root"
    )
    t.add_argument("--name", default="ptychopinn", help="model name in the repository")
    t.add_argument(
        "--force", action="store_true", help="overwrite an existing model folder of that name"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from parity.cli import configure_logging
    from ptycho_torch.cli import call, run_cli

    args = _parser().parse_args(argv)
    if args.command in _HOST_COMMANDS:
        return call(
            "export.host_cli:main", [args.command, *args.host_args], prog="python -m export"
        )
    if args.command == "bench":
        return call("bench.cli:main", args.bench_args, prog="python -m export bench")
    configure_logging(args.verbose)
    return run_cli(
        lambda: _triton(args) if args.command == "triton" else _build(args),
        configure_logging=False,
    )


def _triton(args: argparse.Namespace) -> int:
    from export.triton import write_triton_repository

    model_dir = write_triton_repository(args.artifacts, args.out, args.name, force=args.force)
    print(f"wrote {model_dir}/config.pbtxt and {model_dir}/1/model.onnx")
    return 0


def _build(args: argparse.Namespace) -> int:
    from export.build import build
    from parity.cli import check_options, run_check_command
    from ptycho_torch.threads import set_threads

    options = BUILD.build(args)
    checks = check_options(args, options.out)  # a bad check option (--threads x) fails here
    if checks.report_dir is not None and not args.no_parity:
        from parity.report.folder import check_report_folder

        check_report_folder(checks.report_dir)  # a --report-dir that is a file: before the build
    threads = set_threads(checks.threads)  # once, before any work; the check reuses it
    result = build(options, make_reference=_reference_maker(), threads=threads.to_dict())
    print(f"build OK: {len(result.manifest.files)} files in {result.out} ({result.seconds:.1f} s)")
    if args.no_parity:
        return 0
    return run_check_command(args, result.out, threads=threads)


def _reference_maker():  # type: ignore[no-untyped-def]
    """The TensorFlow twin as a reference generator, when TensorFlow is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return None

    def make(checkpoint: Path, inputs: Path, out: Path, head: str) -> None:
        from parity.tf_twin.generate import generate_reference

        generate_reference(checkpoint, inputs, out, head=head)

    return make


if __name__ == "__main__":
    sys.exit(main())
