"""``ptychopinn <command>``: every command of the toolkit, listed once in :data:`COMMANDS`.

``python -m export <command>`` (what users and CI call) and ``python -m ptychopinn <command>``
are the same commands: their ``__main__`` hands over to :func:`main`. A command's module is
imported only when it runs, through :func:`ptycho_torch.cli.call`: listing the commands imports
no framework, the host commands import no torch, and a package missing at import time is exit
3 with its install line. Torch-free.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from ptycho_torch.cli import call

__all__ = ["COMMANDS", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """One command of the tree.

    Attributes:
        name: what users type (``ptychopinn build``).
        help: one line for the command list.
        target: ``module:NAME`` of its :class:`ptychopinn.command.CommandLine`.
        torch_free: runs on a host without torch, lightning or onnx (the host's install).
    """

    name: str
    help: str
    target: str
    torch_free: bool = False


COMMANDS: tuple[Command, ...] = (
    Command(
        "build",
        "export a checkpoint (TorchScript, ONNX, torch.export), check and publish the "
        "artifacts, then run parity",
        "ptychopinn.build:BUILD",
    ),
    Command(
        "triton",
        "write a Triton model repository (ONNX Runtime backend) from built artifacts",
        "ptychopinn.build:TRITON",
    ),
    Command(
        "predict",
        "reconstruct a whole scan with ONNX Runtime: stitched object, PNGs",
        "ptychopinn.host:PREDICT",
        torch_free=True,
    ),
    Command(
        "verify",
        "check a copied artifacts folder: hashes, manifest, the parity batch with ONNX Runtime",
        "ptychopinn.host:VERIFY",
        torch_free=True,
    ),
    Command(
        "pack",
        "write one self-contained .tar.gz of an artifacts folder to copy to a host",
        "ptychopinn.host:PACK",
        torch_free=True,
    ),
    Command(
        "serve",
        "serve the ONNX model through a Triton server (PyTriton; the 'serve' extra, Python "
        "3.12) until SIGTERM or Ctrl-C",
        "ptychopinn.serve:SERVE",
        torch_free=True,
    ),
    Command(
        "client",
        "reconstruct a scan through a running Triton server, as predict does",
        "ptychopinn.serve:CLIENT",
        torch_free=True,
    ),
    Command(
        "serve-bench",
        "load test of serve: concurrent clients, every answer checked, next to bare ONNX Runtime",
        "ptychopinn.serve:SERVE_BENCH",
        torch_free=True,
    ),
    Command(
        "check",
        "compare every backend against the reference and write reports",
        "ptychopinn.parity:CHECK",
    ),
    Command(
        "reference",
        "run the TensorFlow twin and write reference.npz + reference.json",
        "ptychopinn.parity:REFERENCE",
    ),
    Command(
        "trace",
        "dtype, shape and range of every module call of the eager model; the first "
        "non-float32 tensor and the line that fed it",
        "ptychopinn.parity:TRACE",
    ),
    Command(
        "bisect",
        "the first layer boundary where two backends part on one batch",
        "ptychopinn.parity:BISECT",
    ),
    Command(
        "import-tf",
        "import a model trained by the original TensorFlow PtychoPINN into a checkpoint",
        "ptychopinn.from_tensorflow:IMPORT_TF",
    ),
    Command(
        "import-keras",
        "convert a Keras weights file of this architecture into a PyTorch model file",
        "ptychopinn.from_tensorflow:IMPORT_KERAS",
    ),
    Command(
        "import-reference",
        "arrays written by the original TensorFlow PtychoPINN as a reference and a feed NPZ",
        "ptychopinn.from_tensorflow:IMPORT_REFERENCE",
    ),
    Command("simulate", "write a simulated ptychography NPZ", "ptychopinn.train:SIMULATE"),
    Command("train", "train PtychoPINN with Lightning", "ptychopinn.train:TRAIN"),
    Command(
        "infer",
        "reconstruct a scan with a trained model (eager PyTorch): object, images, metrics",
        "ptychopinn.train:INFER",
    ),
    Command(
        "bench",
        "throughput, latency and fraction of the GEMM ceiling per backend and batch size",
        "ptychopinn.bench:BENCH",
    ),
    Command(
        "bench-train",
        "training steps per second, ours against the same step in Keras, with where the time goes",
        "ptychopinn.bench_train:BENCH_TRAIN",
    ),
)

_BY_NAME = {command.name: command for command in COMMANDS}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train PtychoPINN, export it with a fixed float32 signature, prove parity "
        "with the TensorFlow reference, and run it on a torch-free host.",
        epilog=f"`{prog} COMMAND --help` lists a command's options. Exit codes: 0 pass, 1 parity "
        "failure, 2 usage or bad input, 3 environment, 4 stale reference (docs/errors.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="DEBUG log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:  # each command parses its own options, once it is imported
        help_line = command.help + (" (torch-free)" if command.torch_free else "")
        one = sub.add_parser(command.name, help=help_line, add_help=False, prefix_chars="\0")
        one.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "ptychopinn") -> int:
    """Run one command; returns its exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        prog: how the user called the tree, for ``--help`` (``python -m export``).
    """
    args = _parser(prog).parse_args(argv)
    command = _BY_NAME[args.command]
    return call(command.target, args.arguments, prog=f"{prog} {command.name}", verbose=args.verbose)
