"""Training: scan NPZ (or the built-in demo scan) -> Lightning checkpoint and slim model file.

``python -m ptycho_torch.train --data scan.npz --out runs/x`` or
``python -m ptycho_torch.train --preset demo --out runs/demo`` writes ``DIR/last.ckpt``
(Lightning, loads with ``weights_only=True``) and ``DIR/model.pt`` (slim, via
:func:`ptycho_torch.checkpoint.save_model`).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lightning as L
import torch

from ptycho_torch.checkpoint import save_model
from ptycho_torch.cli import UsageError, run_cli
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.data import PtychoData, PtychoDataModule, intensity_scale, load_npz
from ptycho_torch.errors import ExitCode, ToolError
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.simulate import SimulationConfig, simulate_scan

__all__ = ["DEMO_SIMULATION", "TrainResult", "demo_data", "main", "train"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The demo scan: fixed seed, N=64; sized so that training fits in a few minutes on 2 CPU cores.
DEMO_SIMULATION = SimulationConfig(seed=0, n_images=1024, N=64, photons=1e6, probe="aperture")
DEMO_EPOCHS = 12
DEMO_BATCH_SIZE = 16
DEMO_LR = 2e-3


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    checkpoint: Path  # DIR/last.ckpt
    model_file: Path  # DIR/model.pt
    seconds: float  # wall time of Trainer.fit
    train_loss: float | None  # last logged values
    val_loss: float | None


def demo_data() -> PtychoData:
    """The demo scan, simulated in memory (deterministic)."""
    scan = simulate_scan(DEMO_SIMULATION)
    return PtychoData(
        diffraction=scan.diffraction,
        probe=scan.probe,
        xcoords=scan.xcoords,
        ycoords=scan.ycoords,
        obj=scan.obj,
        patches=scan.patches,
        scan_index=scan.scan_index,
    )


def train(
    data: PtychoData,
    out: str | Path,
    model_config: ModelConfig,
    data_config: DataConfig,
    train_config: TrainConfig,
    trainer_options: dict[str, object] | None = None,
) -> TrainResult:
    """Fit a PtychoPINN to ``data`` and write ``last.ckpt`` and ``model.pt`` under ``out``.

    ``model_config.intensity_scale`` is used as given (see :func:`intensity_scale`); the probe
    is taken from ``data``. ``trainer_options`` go to ``lightning.Trainer`` (accelerator,
    devices, strategy, enable_progress_bar, ...).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(train_config.seed, verbose=False)
    module = PtychoLightning(
        model_config.to_dict(), data_config.to_dict(), train_config.to_dict(), probe=data.probe
    )
    datamodule = PtychoDataModule(
        data, model_config.gridsize, data_config, intensity_scale=model_config.intensity_scale
    )
    options: dict[str, object] = {
        "max_epochs": train_config.epochs,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "log_every_n_steps": 10,
        "deterministic": True,
    }
    if len(datamodule.val_samples) == 0:
        options["limit_val_batches"] = 0
    options.update(trainer_options or {})
    trainer = L.Trainer(**options)  # type: ignore[arg-type]
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    checkpoint = out / "last.ckpt"
    model_file = out / "model.pt"
    trainer.save_checkpoint(checkpoint)
    if trainer.is_global_zero:
        save_model(module.model.cpu().float(), model_file)
    metrics = trainer.callback_metrics
    result = TrainResult(
        checkpoint=checkpoint,
        model_file=model_file,
        seconds=seconds,
        train_loss=_value(metrics.get("train_loss")),
        val_loss=_value(metrics.get("val_loss")),
    )
    logger.info(
        "trained %d epochs in %.1f s (train_loss=%s, val_loss=%s); wrote %s and %s",
        train_config.epochs, seconds, result.train_loss, result.val_loss, checkpoint, model_file,
    )  # fmt: skip
    return result


def _value(t: torch.Tensor | None) -> float | None:
    return None if t is None else float(t)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ptycho_torch.train", description="Train PtychoPINN with Lightning."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="scan .npz (data contract)")
    source.add_argument(
        "--preset", choices=("demo",), help="demo: simulate and train a small model"
    )
    p.add_argument("--out", required=True, help="output folder (last.ckpt, model.pt)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--gridsize", type=int, default=None)
    p.add_argument("--n-filters-scale", type=int, default=None)
    p.add_argument("--mae-weight", type=float, default=0.0, help="weight of the amplitude MAE")
    p.add_argument("--seed", type=int, default=0, help="initialisation, split and shuffle seed")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    p.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy (e.g. ddp)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _given(value: T | None, default: T) -> T:
    """The option's value when given (0 included, so that validation sees it), else the default."""
    return default if value is None else value


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)

    def body() -> None:
        demo = args.preset == "demo"
        try:  # options first: a bad value fails before any data is read or simulated
            data_config = DataConfig(
                batch_size=_given(args.batch_size, DEMO_BATCH_SIZE if demo else 16),
                seed=args.seed,
            )
            train_config = TrainConfig(
                epochs=_given(args.epochs, DEMO_EPOCHS if demo else 10),
                learning_rate=_given(args.lr, DEMO_LR if demo else 1e-3),
                mae_weight=args.mae_weight,
                seed=args.seed,
            )
            ModelConfig(
                gridsize=_given(args.gridsize, 1),
                n_filters_scale=_given(args.n_filters_scale, 1 if demo else 2),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ToolError(
                f"--accelerator {args.accelerator} but torch sees no CUDA device "
                f"(torch {torch.__version__}); use --accelerator cpu or auto",
                exit_code=ExitCode.ENVIRONMENT,
            )
        data = demo_data() if demo else load_npz(args.data)
        scale = intensity_scale(data.diffraction)
        try:
            model_config = ModelConfig(
                N=data.N,
                gridsize=_given(args.gridsize, 1),
                n_filters_scale=_given(args.n_filters_scale, 1 if demo else 2),
                intensity_scale=scale,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        logger.info("intensity scale from data: %.4g", scale)
        train(
            data,
            args.out,
            model_config,
            data_config,
            train_config,
            {
                "accelerator": args.accelerator,
                "devices": _devices(args.devices),
                "strategy": args.strategy,
                "enable_progress_bar": not args.no_progress,
            },
        )

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
