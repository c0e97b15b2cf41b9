"""``python -m ptycho_torch.infer``: reconstruct a scan with a trained model, write images and metrics.

Writes ``DIR/reconstruction.npz``, ``DIR/amplitude.png``, ``DIR/phase.png`` and, when the NPZ
has ``objectGuess``, ``DIR/metrics.json`` (see :mod:`ptycho_torch.infer`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ptycho_torch.checkpoint import load_model
from ptycho_torch.cli import UsageError, run_cli
from ptycho_torch.cli_options import ConfigOptions
from ptycho_torch.infer import InferConfig, evaluate, reconstruct, untrained_like, write_outputs
from ptycho_torch.scan import load_npz
from ptycho_torch.thread_option import THREADS_HELP, parse_threads
from ptycho_torch.threads import set_threads

__all__ = ["main"]

logger = logging.getLogger("ptycho_torch.infer")

INFERENCE = ConfigOptions(InferConfig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ptycho_torch.infer",
        description="Reconstruct the object of a scan with a trained PtychoPINN.",
    )
    p.add_argument("--checkpoint", required=True, help="Lightning .ckpt or model.pt")
    p.add_argument(
        "--data",
        required=True,
        help="scan .npz (data contract, or a PtychoPINN/Ptychodus diff3d training file)",
    )
    p.add_argument("--out", required=True, help="output folder")
    INFERENCE.add_to(p)
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also report the metrics of an untrained model with the same config",
    )
    p.add_argument(
        "--threads",
        default="auto",
        help=THREADS_HELP + " (default: auto)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)

    def body() -> None:
        config = INFERENCE.build(args)  # before any file is read
        try:
            parse_threads(args.threads)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        threads = set_threads(args.threads)
        model = load_model(args.checkpoint)
        data = load_npz(args.data)
        recon = reconstruct(model, data, config.batch_size)
        paths = write_outputs(recon, Path(args.out))
        logger.info("wrote %s", ", ".join(str(p) for p in paths))
        metrics = evaluate(recon, data)
        if metrics is None:
            logger.info("no objectGuess in %s: no quality metrics", args.data)
            return
        report: dict[str, object] = {"trained": metrics.to_dict(), "threads": threads.to_dict()}
        print(f"trained:   {metrics.summary()}")
        if args.baseline:
            base = evaluate(reconstruct(untrained_like(model), data, config.batch_size), data)
            assert base is not None
            report["untrained"] = base.to_dict()
            print(f"untrained: {base.summary()}")
        (Path(args.out) / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")

    return run_cli(body)
