"""Training: scan NPZ (or the built-in demo scan) -> Lightning checkpoint and slim model file.

``python -m export train --data scan.npz --out runs/x`` or
``python -m export train --preset demo --out runs/demo`` writes, under ``DIR``:

- ``last.ckpt`` (every epoch; what ``--resume`` continues from) and ``best.ckpt`` (lowest
  ``val_loss``): Lightning checkpoints that load with ``weights_only=True`` and record what the
  run is reproducible over under ``"ptycho_run"`` (:func:`run_record`);
- ``model.pt`` (slim, the final weights, via :func:`ptycho_torch.checkpoint.save_model`);
- ``metrics.csv`` (per epoch: losses, learning rate, patterns/s), ``hparams.yaml`` and
  ``loss_curve.png``.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from ptycho_torch.checkpoint import model_state_sha256, save_model
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.data import PtychoDataModule
from ptycho_torch.errors import CheckpointError
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.scan import PtychoData
from ptycho_torch.simulate import SimulationConfig, simulate_scan
from ptycho_torch.threads import ThreadChoice, cpu_kind
from ptycho_torch.training_log import EpochLine, RunCSVLogger, plot_loss_curve

__all__ = [
    "DEMO_PRESET",
    "DEMO_SIMULATION",
    "TrainResult",
    "demo_data",
    "resume_point",
    "run_record",
    "train",
]

logger = logging.getLogger(__name__)

# The demo scan: fixed seed, N=64; sized so that training fits in a few minutes on 2 CPU cores.
DEMO_SIMULATION = SimulationConfig(seed=0, n_images=1024, N=64, photons=1e6, probe="aperture")
# The demo's option values by field name (ModelConfig, DataConfig, TrainConfig); given options
# override them, and the dataclass defaults apply to the rest.
# The demo keeps its own recipe (constant lr, no early stop, 10% validation): in 12 epochs the
# network leaves its initial plateau only around epoch 5, and the original's schedule, halving
# the rate from epoch 4, kept it there (held-out amplitude r=0.006 against 0.702; README).
DEMO_PRESET: Mapping[str, object] = MappingProxyType(
    {
        "epochs": 12,
        "batch_size": 16,
        "learning_rate": 2e-3,
        "n_filters_scale": 1,
        "lr_factor": 1.0,
        "early_stop_patience": 0,
        "val_fraction": 0.1,
    }
)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    checkpoint: Path  # DIR/last.ckpt
    model_file: Path  # DIR/model.pt
    seconds: float  # wall time of Trainer.fit
    train_loss: float | None  # last logged values
    val_loss: float | None
    best_checkpoint: Path | None = None  # DIR/best.ckpt (lowest val_loss), if validated
    epochs: int = 0  # epochs completed (early stopping may end before TrainConfig.epochs)
    metrics_file: Path | None = None  # DIR/metrics.csv


def demo_data() -> PtychoData:
    """The demo scan, simulated in memory (deterministic)."""
    return simulate_scan(DEMO_SIMULATION)


def train(
    data: PtychoData,
    out: str | Path,
    model_config: ModelConfig,
    data_config: DataConfig,
    train_config: TrainConfig,
    trainer_options: dict[str, object] | None = None,
    *,
    resume: bool = False,
    threads: ThreadChoice | None = None,
) -> TrainResult:
    """Fit a PtychoPINN to ``data``; write checkpoints, ``model.pt`` and metrics under ``out``.

    ``model_config.intensity_scale`` is used as given (see :func:`intensity_scale`); the probe
    is taken from ``data``. ``trainer_options`` go to ``lightning.Trainer`` (accelerator,
    devices, strategy, enable_progress_bar, ...); without a progress bar one line per epoch
    is logged. ``resume`` continues from ``out/last.ckpt`` (weights, optimizer, schedule,
    epoch) up to ``train_config.epochs``. ``threads``: how the thread count was chosen, for
    the record (the count itself is read from torch).

    Raises:
        CheckpointError: ``resume`` without a usable ``out/last.ckpt`` for this model.
    """
    out = Path(out)
    last = out / "last.ckpt"
    keep_epochs = resume_point(last, model_config) - 1 if resume else None
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(train_config.seed, verbose=False)
    scale = model_config.intensity_scale
    datamodule = PtychoDataModule(
        data, model_config.gridsize, data_config, scale, in_memory=train_config.in_memory_data
    )
    validated = len(datamodule.val_samples) > 0
    record = run_record(train_config.seed, threads)
    module = PtychoLightning(
        model_config.to_dict(),
        data_config.to_dict(),
        train_config.to_dict(),
        probe=data.probe,
        schedule_monitor="val_loss" if validated else "train_loss",
        run_record=record,
    )
    trainer = _trainer(out, train_config, validated, keep_epochs, trainer_options)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None)
    result = _write_results(trainer, module, out, time.perf_counter() - start)
    if trainer.world_size > 1:  # DDP keeps the ranks' weights equal; this line shows it
        logger.info(
            "rank %d of %d: weights %s",
            trainer.global_rank, trainer.world_size, model_state_sha256(module.model),
        )  # fmt: skip
    if not trainer.is_global_zero:
        return result
    best = result.best_checkpoint
    logger.info(
        "trained %d epochs in %.1f s (train_loss=%s, val_loss=%s, %s); wrote %s, %s%s",
        result.epochs, result.seconds, result.train_loss, result.val_loss,
        f"threads {record['threads']}", last, result.model_file, f" and {best}" if best else "",
    )  # fmt: skip
    return result


def _trainer(
    out: Path,
    train_config: TrainConfig,
    validated: bool,
    keep_epochs: int | None,
    trainer_options: dict[str, object] | None,
) -> L.Trainer:
    """The Lightning trainer: the run's logger and callbacks, then ``trainer_options``."""
    options: dict[str, object] = {
        "max_epochs": train_config.epochs,
        "logger": RunCSVLogger(out, keep_epochs),
        "enable_model_summary": False,
        "log_every_n_steps": 1,
        "deterministic": True,
    }
    if not validated:
        options["limit_val_batches"] = 0
    options.update(trainer_options or {})
    progress = bool(options.get("enable_progress_bar", True))
    options["callbacks"] = [
        *_callbacks(out, train_config, validated, progress),
        *list(options.get("callbacks") or []),  # type: ignore[call-overload]
    ]
    return L.Trainer(**options)  # type: ignore[arg-type]


def _write_results(
    trainer: L.Trainer, module: PtychoLightning, out: Path, seconds: float
) -> TrainResult:
    """``last.ckpt`` (full state, for ``--resume``), ``model.pt`` and the loss curve; what the
    run produced."""
    last, model_file, metrics_file = out / "last.ckpt", out / "model.pt", out / "metrics.csv"
    # full state for --resume (a save: Lightning only asks to say so); also when max_steps ended
    # the fit inside an epoch
    trainer.save_checkpoint(last, weights_only=False)
    if trainer.is_global_zero:
        save_model(module.model.cpu().float(), model_file)
        if metrics_file.is_file():
            plot_loss_curve(metrics_file, out / "loss_curve.png")
    metrics = trainer.callback_metrics
    return TrainResult(
        checkpoint=last,
        model_file=model_file,
        seconds=seconds,
        train_loss=_value(metrics.get("train_loss")),
        val_loss=_value(metrics.get("val_loss")),
        best_checkpoint=_best_path(trainer),
        epochs=trainer.current_epoch,
        metrics_file=metrics_file if metrics_file.is_file() else None,
    )


def run_record(seed: int, threads: ThreadChoice | None = None) -> dict[str, Any]:
    """What a training run is bit-reproducible over, as saved in its checkpoints.

    Same data and options (the speed settings of ``TrainConfig`` included), and the same seed,
    thread count, torch version and CPU kind give the same weights; a different thread count,
    memory layout or CPU changes float rounding, hence the weights.
    """
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "threads_choice": threads.to_dict() if threads else None,
        "torch": str(torch.__version__),  # a TorchVersion would not load with weights_only
        "lightning": str(L.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
        "cpu": cpu_kind(),
        "machine": platform.machine(),
        "deterministic": True,
    }


def resume_point(checkpoint: Path, model_config: ModelConfig) -> int:
    """Epochs completed by the run that wrote ``checkpoint``, after checking it fits this model.

    Raises:
        CheckpointError: no checkpoint, or one written for another model configuration.
    """
    if not checkpoint.is_file():
        raise CheckpointError(
            f"--resume: {checkpoint} does not exist, so there is no run to continue; "
            "start one without --resume"
        )
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved = (raw.get("hyper_parameters") or {}).get("model_config") or {}
    wanted = model_config.to_dict()
    differ = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if differ:
        raise CheckpointError(
            f"--resume: {checkpoint} was trained with other model options {differ} "
            f"(saved {[saved.get(k) for k in differ]}, now {[wanted[k] for k in differ]}); "
            "give the same options and data, or start a new run in another --out"
        )
    try:  # "processed": the epoch-end checkpoint is written before "completed" counts the epoch
        return int(raw["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(raw.get("epoch", 0))


def _callbacks(out: Path, cfg: TrainConfig, validated: bool, progress: bool) -> list[L.Callback]:
    """last.ckpt every epoch, best.ckpt by val_loss, early stopping, the per-epoch line."""
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=out,
            filename="best",
            monitor="val_loss" if validated else None,
            mode="min",
            save_top_k=1 if validated else 0,
            save_last=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
            save_on_train_epoch_end=True,  # after the module has stepped the lr schedule
        ),
        EpochLine(emit=not progress),
    ]
    if cfg.early_stop_patience > 0:
        monitor = cfg.early_stop_monitor if validated else "train_loss"
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                patience=cfg.early_stop_patience,
                min_delta=0.0,
                mode="min",
                check_on_train_epoch_end=True,
            )
        )
    return callbacks


def _best_path(trainer: L.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    return Path(path) if path else None


def _value(t: torch.Tensor | None) -> float | None:
    return None if t is None else float(t)
