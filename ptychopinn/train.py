"""``simulate``, ``train`` and ``infer``: data, Lightning training and eager inference.

Model, data and training options come from :class:`~ptycho_torch.config.ModelConfig`,
:class:`~ptycho_torch.config.DataConfig`, :class:`~ptycho_torch.config.TrainConfig`,
:class:`~ptycho_torch.infer.InferConfig` and :class:`~ptycho_torch.simulate.SimulationConfig`,
so their defaults live there; ``train --preset demo`` replaces them with
:data:`ptycho_torch.train.DEMO_PRESET` and given options replace both. Every option is validated
before any data is read or simulated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptycho_torch.cli import UsageError
from ptycho_torch.config import PLAIN_SPEED, DataConfig, ModelConfig, TrainConfig
from ptycho_torch.simulate import SimulationConfig
from ptycho_torch.thread_option import training_process
from ptychopinn.command import CommandLine, add_threads_option, given_threads
from ptychopinn.options import ConfigOptions

__all__ = ["INFER", "SIMULATE", "TRAIN"]

_DATA_HELP = "scan .npz (data contract, or a PtychoPINN/Ptychodus diff3d training file)"

TRAINING_OPTIONS = ConfigOptions(
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
# TrainConfig's speed settings (docs/training.md, "Speed settings"), a group of their own
SPEED_OPTIONS = ConfigOptions(TrainConfig, fields=(*PLAIN_SPEED, "precision"))
DATA_OPTIONS = ConfigOptions(DataConfig, fields=("batch_size", "val_fraction"))
MODEL_OPTIONS = ConfigOptions(ModelConfig, fields=("gridsize", "n_filters_scale"))
SIMULATION_OPTIONS = ConfigOptions(SimulationConfig)


def _presets() -> Mapping[str, Mapping[str, Any]]:
    from ptycho_torch.train import DEMO_PRESET  # imports lightning

    return {"demo": DEMO_PRESET}


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .npz file")
    SIMULATION_OPTIONS.add_to(p)


def _simulate(args: argparse.Namespace) -> None:
    from ptycho_torch.simulate import simulate_scan, write_npz

    config = SIMULATION_OPTIONS.build(args)
    try:
        scan = simulate_scan(config)
    except ValueError as exc:  # e.g. an object_size too small for the scan grid
        raise UsageError(str(exc)) from None
    path = write_npz(scan, args.out)
    logging.getLogger("ptycho_torch.simulate").info("wrote %s", path)


SIMULATE = CommandLine(
    "Write a simulated ptychography NPZ.", _simulate_arguments, _simulate, log_names=True
)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    training_process()  # before _presets() loads torch
    presets = _presets()
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=_DATA_HELP)
    source.add_argument(
        "--preset", choices=tuple(presets), help="demo: simulate and train a small model"
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
    add_threads_option(p)
    TRAINING_OPTIONS.add_to(p.add_argument_group("training (TrainConfig)"), presets=presets)
    SPEED_OPTIONS.add_to(p.add_argument_group("speed (TrainConfig; docs/training.md)"))
    DATA_OPTIONS.add_to(p.add_argument_group("data (DataConfig)"), presets=presets)
    MODEL_OPTIONS.add_to(p.add_argument_group("model (ModelConfig)"), presets=presets)
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


def _train(args: argparse.Namespace) -> None:
    from ptycho_torch.devices import check_devices, parse_devices, parse_num_nodes
    from ptycho_torch.prepare import intensity_scale
    from ptycho_torch.scan import load_npz
    from ptycho_torch.threads import set_threads
    from ptycho_torch.train import demo_data, train

    preset = _presets().get(args.preset, {})
    # options first: a bad value fails before any data is read or simulated
    train_config = TRAINING_OPTIONS.build(args, preset=preset, **SPEED_OPTIONS.given(args))
    data_config = DATA_OPTIONS.build(args, preset=preset, seed=train_config.seed)
    MODEL_OPTIONS.build(args, preset=preset)
    try:
        devices = parse_devices(args.devices)
        num_nodes = parse_num_nodes(args.num_nodes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    given_threads(args)
    check_devices(args.accelerator, devices)  # exit 3 before any data or file
    threads = set_threads(args.threads)
    data = demo_data() if args.preset == "demo" else load_npz(args.data)
    scale = intensity_scale(data.diffraction)
    model_config = MODEL_OPTIONS.build(args, preset=preset, N=data.N, intensity_scale=scale)
    logging.getLogger("ptycho_torch.train").info("intensity scale from data: %.4g", scale)
    trainer = {
        "accelerator": args.accelerator,
        "devices": devices,
        "strategy": args.strategy,
        "num_nodes": num_nodes,
        "enable_progress_bar": not args.no_progress and sys.stderr.isatty(),
    }
    train(
        data,
        args.out,
        model_config,
        data_config,
        train_config,
        trainer,
        resume=args.resume,
        threads=threads,
    )


TRAIN = CommandLine("Train PtychoPINN with Lightning.", _train_arguments, _train, log_names=True)


def _infer_arguments(p: argparse.ArgumentParser) -> None:
    from ptycho_torch.infer import InferConfig  # imports torch

    p.add_argument("--checkpoint", required=True, help="Lightning .ckpt or model.pt")
    p.add_argument("--data", required=True, help=_DATA_HELP)
    p.add_argument("--out", required=True, help="output folder")
    ConfigOptions(InferConfig).add_to(p)
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also report the metrics of an untrained model with the same config",
    )
    add_threads_option(p)


def _infer(args: argparse.Namespace) -> None:
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.infer import InferConfig, evaluate, reconstruct, untrained_like, write_outputs
    from ptycho_torch.scan import load_npz
    from ptycho_torch.threads import set_threads

    config = ConfigOptions(InferConfig).build(args)  # before any file is read
    given_threads(args)
    threads = set_threads(args.threads)
    model = load_model(args.checkpoint)
    data = load_npz(args.data)
    recon = reconstruct(model, data, config.batch_size)
    paths = write_outputs(recon, Path(args.out))
    log = logging.getLogger("ptycho_torch.infer")
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    metrics = evaluate(recon, data)
    if metrics is None:
        log.info("no objectGuess in %s: no quality metrics", args.data)
        return
    report: dict[str, object] = {"trained": metrics.to_dict(), "threads": threads.to_dict()}
    print(f"trained:   {metrics.summary()}")
    if args.baseline:
        base = evaluate(reconstruct(untrained_like(model), data, config.batch_size), data)
        assert base is not None
        report["untrained"] = base.to_dict()
        print(f"untrained: {base.summary()}")
    (Path(args.out) / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")


INFER = CommandLine(
    "Reconstruct the object of a scan with a trained PtychoPINN.",
    _infer_arguments,
    _infer,
    log_names=True,
)
