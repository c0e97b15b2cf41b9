"""``python -m export build|triton``: parse arguments, build, make the reference, run parity.

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

from export.exporters import DEFAULT_OPSET
from export.publish import DEFAULT_KEEP

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from export.build import DEMO_DIR

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
    b.add_argument(
        "--checkpoint",
        type=Path,
        default=DEMO_DIR / "model.pt",
        help="Lightning .ckpt or model file (default: the bundled demo model)",
    )
    b.add_argument(
        "--inputs",
        type=Path,
        default=DEMO_DIR / "inputs.npz",
        help="feed NPZ or scan NPZ (default: the bundled demo batch)",
    )
    b.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts"),
        help="artifacts: a link switched atomically to the new build (default: artifacts)",
    )
    b.add_argument(
        "--batch",
        type=int,
        help="fixed batch size of the artifacts (default: the inputs' batch, or 4 for a scan NPZ)",
    )
    b.add_argument(
        "--head",
        choices=["object", "physics"],
        default="object",
        help="object: diffraction -> amplitude, phase (default); physics: also positions -> pred_amplitude",
    )
    b.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    b.add_argument(
        "--reference",
        default="auto",
        help="auto (bundled for the demo, else generated with TensorFlow when installed), none, or a reference.npz",
    )
    b.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if it holds files that are not build artifacts",
    )
    b.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"previous builds kept in .OUT.versions/ beside --out (default {DEFAULT_KEEP})",
    )
    b.add_argument("--no-parity", action="store_true", help="skip the parity check after the build")
    from parity.cli import add_check_arguments

    add_check_arguments(b)
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
    from ptycho_torch.cli import run_cli

    args = _parser().parse_args(argv)
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
    from export.build import BuildOptions, build

    if args.batch is not None and args.batch < 1:
        from export.errors import ExportError

        raise ExportError(f"--batch must be >= 1, got {args.batch}")
    options = BuildOptions(
        checkpoint=args.checkpoint,
        inputs=args.inputs,
        out=args.out,
        batch=args.batch,
        head=args.head,
        opset=args.opset,
        force=args.force,
        reference=args.reference,
        keep=args.keep,
    )
    result = build(options, make_reference=_reference_maker())
    print(f"build OK: {len(result.manifest.files)} files in {result.out} ({result.seconds:.1f} s)")
    if args.no_parity:
        return 0
    from parity.cli import run_check_command

    return run_check_command(args, result.out)


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
