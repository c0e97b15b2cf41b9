"""LightningModule around the plain :class:`PtychoPINN`: Poisson NLL training, Adam.

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
from ptycho_torch.model import PtychoPINN

__all__ = ["PtychoLightning", "poisson_nll"]


def poisson_nll(pred_amplitude: Tensor, target_amplitude: Tensor) -> Tensor:
    """Mean Poisson negative log-likelihood on intensities: ``pred_I - target_I * log(pred_I)``.

    As the original computes it (``tf.nn.log_poisson_loss`` with ``compute_full_loss=False`` on
    ``log(pred_I)``): no epsilon inside the log, so it reproduces the original's
    ``negloglik`` to float32 round-off (a zero predicted intensity gives ``-inf``/NaN there too).
    """
    pred_i = pred_amplitude.square()
    target_i = target_amplitude.square()
    return (pred_i - target_i * torch.log(pred_i)).mean()


class PtychoLightning(L.LightningModule):
    """Trains the unsupervised physics-informed network against measured amplitudes.

    Args:
        model_config: :meth:`ModelConfig.to_dict` output (a plain dict, saved as a hyperparameter).
        data_config: :meth:`DataConfig.to_dict` output (recorded for provenance).
        train_config: :meth:`TrainConfig.to_dict` output.
        probe: complex ``(N, N)`` probe, set on the model before training. Not a hyperparameter:
            it lives in the state dict (``model.probe_re``/``model.probe_im``).
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        data_config: dict[str, Any] | None = None,
        train_config: dict[str, Any] | None = None,
        probe: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__()
        data_config = data_config if data_config is not None else DataConfig().to_dict()
        train_config = train_config if train_config is not None else TrainConfig().to_dict()
        model_config = dict(model_config)
        # by name, from this frame's locals (a dict argument would be compared with the probe)
        self.save_hyperparameters("model_config", "data_config", "train_config")
        self.train_config = TrainConfig(**train_config)
        self.model = PtychoPINN(ModelConfig.from_dict(model_config), probe=probe)

    def forward(self, diffraction: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model(diffraction, positions)

    def _loss(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        diffraction, positions = batch  # (B, C, N, N), (B, C, 2)
        _, _, pred = self.model(diffraction, positions)
        cfg = self.train_config
        nll = poisson_nll(pred, diffraction)
        loss = cfg.nll_weight * nll
        if cfg.mae_weight > 0:
            loss = loss + cfg.mae_weight * (pred - diffraction).abs().mean()
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=diffraction.shape[0])
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            (p for p in self.parameters() if p.requires_grad), lr=self.train_config.learning_rate
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
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
