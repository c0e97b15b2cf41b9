"""``build`` and ``triton``: export the artifacts, make the reference, run the parity check;
write a Triton model repository from them.

``build`` composes the three layers below: :func:`export.build.build` writes and publishes the
artifacts, the TensorFlow twin (:mod:`parity.tf_twin`) makes the reference when TensorFlow is
installed, and the parity check (:mod:`ptychopinn.parity`) runs on the published folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from export.options import BuildOptions
from ptychopinn.command import CommandLine
from ptychopinn.options import ConfigOptions
from ptychopinn.parity import add_check_arguments, check_options, run_check

if TYPE_CHECKING:
    from export.reference_files import ReferenceMaker
    from export.signature import Head

__all__ = ["BUILD", "TRITON"]

BUILD_OPTIONS = ConfigOptions(BuildOptions)


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    BUILD_OPTIONS.add_to(parser)  # every BuildOptions field; its default and help live on the field
    parser.add_argument(
        "--no-parity", action="store_true", help="skip the parity check after the build"
    )
    add_check_arguments(parser)


def _build(args: argparse.Namespace) -> int:
    from export.build import build
    from ptycho_torch.threads import set_threads

    options = BUILD_OPTIONS.build(args)
    checks = check_options(args, options.out)  # a bad check option (--threads x) fails here
    if checks.report_dir is not None and not args.no_parity:
        from parity.report.folder import check_report_folder

        check_report_folder(checks.report_dir)  # a --report-dir that is a file: before the build
    threads = set_threads(checks.threads)  # once, before any work; the check reuses it
    result = build(options, make_reference=_reference_maker(), threads=threads.to_dict())
    print(f"build OK: {len(result.manifest.files)} files in {result.out} ({result.seconds:.1f} s)")
    if args.no_parity:
        return 0
    return run_check(dataclasses.replace(checks, artifacts=result.out), threads=threads)


def _reference_maker() -> ReferenceMaker | None:
    """The TensorFlow twin as a reference generator, when TensorFlow is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return None

    def make(checkpoint: Path, inputs: Path, out: Path, head: Head) -> None:
        from parity.tf_twin.generate import generate_reference

        generate_reference(checkpoint, inputs, out, head=head)

    return make


BUILD = CommandLine(
    "Export PtychoPINN with a fixed float32 signature (TorchScript, ONNX, torch.export), check "
    "every artifact against eager PyTorch, publish atomically, and prove parity.",
    _build_arguments,
    _build,
)


def _triton_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="folder written by `export build`"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("model_repository"), help="model repository root"
    )
    parser.add_argument("--name", default="ptychopinn", help="model name in the repository")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing model folder of that name"
    )


def _triton(args: argparse.Namespace) -> int:
    from export.triton import write_triton_repository

    model_dir = write_triton_repository(args.artifacts, args.out, args.name, force=args.force)
    print(f"wrote {model_dir}/config.pbtxt and {model_dir}/1/model.onnx")
    return 0


TRITON = CommandLine(
    "Write a Triton model repository (ONNX Runtime backend) from built artifacts.",
    _triton_arguments,
    _triton,
)
