"""``python -m export.host verify ARTIFACTS``: arguments in, exit code out (torch-free).

Imports only :mod:`export.host` (NumPy, ONNX Runtime) and the standard-library CLI edge of
:mod:`ptycho_torch`, so an inference host without torch can run it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from export.host import VerifyOptions, verify_artifacts
from ptycho_torch.cli import run_cli
from ptycho_torch.cli_options import ConfigOptions

__all__ = ["main"]

VERIFY = ConfigOptions(VerifyOptions)


def _parser(prog: str = "python -m export.host") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Torch-free runtime for inference hosts: NumPy and ONNX Runtime only.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify", help="check hashes and replay the parity batch with ONNX Runtime"
    )
    verify.add_argument("artifacts", type=Path, help="folder written by `python -m export build`")
    VERIFY.add_to(verify)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m export.host") -> int:
    """CLI entry point (also ``python -m export verify|predict``, with that ``prog``)."""
    args = _parser(prog).parse_args(argv)

    def body() -> None:
        summary = verify_artifacts(args.artifacts, VERIFY.build(args))
        print(f"verified {args.artifacts}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))

    return run_cli(body)
