"""``python -m ptycho_torch.train``: train on a scan NPZ or the demo preset.

Model, data and training options come from :class:`~ptycho_torch.config.ModelConfig`,
:class:`~ptycho_torch.config.DataConfig` and :class:`~ptycho_torch.config.TrainConfig`, so their
defaults live there; ``--preset demo`` replaces them with :data:`ptycho_torch.train.DEMO_PRESET`
and given options replace both. Every option is validated before any data is read or simulated.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ptycho_torch.cli import UsageError, run_cli
from ptycho_torch.cli_options import ConfigOptions
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.devices import check_devices, parse_devices, parse_num_nodes
from ptycho_torch.scan import intensity_scale, load_npz
from ptycho_torch.thread_option import THREADS_HELP, parse_threads
from ptycho_torch.threads import set_threads
from ptycho_torch.train import DEMO_PRESET, demo_data, train

__all__ = ["main"]

logger = logging.getLogger("ptycho_torch.train")

PRESETS: Mapping[str, Mapping[str, Any]] = {"demo": DEMO_PRESET}
TRAINING = ConfigOptions(
    TrainConfig,
    fields=(
        "epochs",
        "learning_rate",
        "mae_weight",
        "seed",
        "lr_factor",
        "lr_patience",
        "lr_min_delta",
        "min_lr",
        "early_stop_patience",
        "early_stop_monitor",
    ),
    flags={"learning_rate": "--lr"},
    helps={"seed": "initialisation, split and shuffle seed (TrainConfig and DataConfig)"},
)
DATA = ConfigOptions(DataConfig, fields=("batch_size", "val_fraction"))
MODEL = ConfigOptions(ModelConfig, fields=("gridsize", "n_filters_scale"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ptycho_torch.train", description="Train PtychoPINN with Lightning."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", help="scan .npz (data contract, or a PtychoPINN/Ptychodus diff3d training file)"
    )
    source.add_argument(
        "--preset", choices=tuple(PRESETS), help="demo: simulate and train a small model"
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder (last.ckpt, best.ckpt, model.pt, metrics.csv, loss_curve.png)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.ckpt (same data and options; --epochs may grow)",
    )
    p.add_argument(
        "--threads",
        default="auto",
        help=THREADS_HELP + "; give N for a bit-reproducible run (default: auto)",
    )
    TRAINING.add_to(p.add_argument_group("training (TrainConfig)"), presets=PRESETS)
    DATA.add_to(p.add_argument_group("data (DataConfig)"), presets=PRESETS)
    MODEL.add_to(p.add_argument_group("model (ModelConfig)"), presets=PRESETS)
    lightning = p.add_argument_group("trainer (lightning.Trainer)")
    lightning.add_argument(
        "--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)"
    )
    lightning.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    lightning.add_argument("--strategy", default="auto", help="Lightning strategy (e.g. ddp)")
    lightning.add_argument(
        "--num-nodes",
        default="1",
        help="machines in a multi-node run (torchrun/SLURM give each its rank); default 1",
    )
    lightning.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar, one log line per epoch (the default when stderr is not a terminal)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)

    def body() -> None:
        preset = PRESETS.get(args.preset, {})
        # options first: a bad value fails before any data is read or simulated
        train_config = TRAINING.build(args, preset=preset)
        data_config = DATA.build(args, preset=preset, seed=train_config.seed)
        MODEL.build(args, preset=preset)
        try:
            devices = parse_devices(args.devices)
            num_nodes = parse_num_nodes(args.num_nodes)
            parse_threads(args.threads)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        check_devices(args.accelerator, devices)  # exit 3 before any data or file
        threads = set_threads(args.threads)
        data = demo_data() if args.preset == "demo" else load_npz(args.data)
        scale = intensity_scale(data.diffraction)
        model_config = MODEL.build(args, preset=preset, N=data.N, intensity_scale=scale)
        logger.info("intensity scale from data: %.4g", scale)
        train(
            data,
            args.out,
            model_config,
            data_config,
            train_config,
            {
                "accelerator": args.accelerator,
                "devices": devices,
                "strategy": args.strategy,
                "num_nodes": num_nodes,
                "enable_progress_bar": not args.no_progress and sys.stderr.isatty(),
            },
            resume=args.resume,
            threads=threads,
        )

    return run_cli(body)
