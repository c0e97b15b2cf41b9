"""LightningModule around the plain :class:`PtychoPINN`: Poisson NLL training, Adam, the original's
ReduceLROnPlateau schedule. The step's computation (loss, optimizer, memory layout) is
:mod:`ptycho_torch.fast_step`'s, run as ``TrainConfig``'s speed settings say.

Hyperparameters are saved as plain dicts only (``model_config``, ``data_config``,
``train_config``), so that the Lightning checkpoint loads with ``torch.load(weights_only=True)``
through :func:`ptycho_torch.checkpoint.load_model`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.fast_step import TrainingLoss, make_adam, prepare_network, restore_layout
from ptycho_torch.model import PtychoPINN

__all__ = ["PtychoLightning"]


class PtychoLightning(L.LightningModule):
    """Trains the unsupervised physics-informed network against measured amplitudes.

    Args:
        model_config: :meth:`ModelConfig.to_dict` output (a plain dict, saved as a hyperparameter).
        data_config: :meth:`DataConfig.to_dict` output (recorded for provenance).
        train_config: :meth:`TrainConfig.to_dict` output.
        probe: complex ``(N, N)`` probe, set on the model before training. Not a hyperparameter:
            it lives in the state dict (``model.probe_re``/``model.probe_im``).
        schedule_monitor: the logged loss the learning-rate schedule watches (``val_loss``;
            ``train_loss`` when there is no validation set).
        run_record: what the run is reproducible over (seed, threads, versions, CPU), written
            to every checkpoint under ``"ptycho_run"``.
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        data_config: dict[str, Any] | None = None,
        train_config: dict[str, Any] | None = None,
        probe: np.ndarray | Tensor | None = None,
        schedule_monitor: str = "val_loss",
        run_record: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        data_config = data_config if data_config is not None else DataConfig().to_dict()
        train_config = train_config if train_config is not None else TrainConfig().to_dict()
        model_config = dict(model_config)
        # by name, from this frame's locals (a dict argument would be compared with the probe)
        self.save_hyperparameters("model_config", "data_config", "train_config")
        self.train_config = TrainConfig(**train_config)
        self.model = PtychoPINN(ModelConfig.from_dict(model_config), probe=probe)
        self.training_loss = TrainingLoss(self.model, self.train_config)
        self.schedule_monitor = schedule_monitor
        self.run_record = dict(run_record or {})
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_state: dict[str, Any] | None = None

    def forward(self, diffraction: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model(diffraction, positions)

    def setup(self, stage: str) -> None:
        # before Lightning restores a checkpoint and builds the optimizer, so that both see the
        # weights in the layout they train in
        prepare_network(self.model, self.train_config)

    def on_fit_end(self) -> None:
        restore_layout(self.model)

    def _loss(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        diffraction, positions = batch  # (B, C, N, N), (B, C, 2)
        if stage == "train":
            loss = self.training_loss(diffraction, positions)
        else:  # never compiled: one graph for training is enough
            loss = self.training_loss.eager(diffraction, positions)
        batch_size = diffraction.shape[0]
        # epoch means (the Keras "loss"/"val_loss"), averaged over DDP ranks so that the
        # schedule, early stop and best checkpoint decide alike; the bar shows the step loss
        self.log(
            f"{stage}_loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=True,
        )
        if stage == "train":
            self.log("loss", loss, on_step=True, prog_bar=True, logger=False)
        return loss

    def on_train_epoch_start(self) -> None:
        # the rate this epoch trains with (the plateau schedule steps after validation)
        lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log("lr", lr, on_step=False, on_epoch=True, sync_dist=True)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.train_config
        optimizer = make_adam((p for p in self.parameters() if p.requires_grad), cfg)
        self.plateau = None
        if cfg.lr_factor < 1:
            # Keras semantics: an improvement is a decrease by more than min_delta (absolute),
            # and the rate drops on the lr_patience-th bad epoch (torch: after `patience`)
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=cfg.lr_factor,
                patience=max(cfg.lr_patience - 1, 0),
                threshold=cfg.lr_min_delta,
                threshold_mode="abs",
                min_lr=cfg.min_lr,
            )
            if self._plateau_state is not None:
                self.plateau.load_state_dict(self._plateau_state)
        return optimizer

    def on_train_epoch_end(self) -> None:
        # Stepped here rather than by Lightning, which steps plateau schedulers after the
        # epoch's checkpoint is written: last.ckpt then holds the stepped schedule and a
        # resumed run continues exactly as an uninterrupted one.
        value = self.trainer.callback_metrics.get(self.schedule_monitor)
        if self.plateau is not None and value is not None:
            self.plateau.step(float(value))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._plateau_state = checkpoint.get("lr_plateau")  # configure_optimizers runs later

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ptycho_run"] = _plain(self.run_record)
        if self.plateau is not None:
            checkpoint["lr_plateau"] = self.plateau.state_dict()
        # Lightning may store hparams as an AttributeDict; weights_only loading needs plain dicts.
        hparams = checkpoint.get("hyper_parameters")
        if hparams is not None:
            checkpoint["hyper_parameters"] = {k: _plain(v) for k, v in dict(hparams).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
