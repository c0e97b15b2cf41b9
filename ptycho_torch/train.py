"""Training: scan NPZ (or the built-in demo scan) -> Lightning checkpoint and slim model file.

``python -m ptycho_torch.train --data scan.npz --out runs/x`` or
``python -m ptycho_torch.train --preset demo --out runs/demo`` writes ``DIR/last.ckpt``
(Lightning, loads with ``weights_only=True``) and ``DIR/model.pt`` (slim, via
:func:`ptycho_torch.checkpoint.save_model`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import lightning as L
import torch

from ptycho_torch.checkpoint import save_model
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.data import PtychoData, PtychoDataModule
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.simulate import SimulationConfig, simulate_scan

__all__ = ["DEMO_PRESET", "DEMO_SIMULATION", "TrainResult", "demo_data", "train"]

logger = logging.getLogger(__name__)

# The demo scan: fixed seed, N=64; sized so that training fits in a few minutes on 2 CPU cores.
DEMO_SIMULATION = SimulationConfig(seed=0, n_images=1024, N=64, photons=1e6, probe="aperture")
# The demo's option values by field name (ModelConfig, DataConfig, TrainConfig); given options
# override them, and the dataclass defaults apply to the rest.
DEMO_PRESET: Mapping[str, object] = MappingProxyType(
    {"epochs": 12, "batch_size": 16, "learning_rate": 2e-3, "n_filters_scale": 1}
)


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


if __name__ == "__main__":
    from ptycho_torch.commands.train import main

    raise SystemExit(main())
