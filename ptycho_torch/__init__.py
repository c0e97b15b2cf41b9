"""PyTorch PtychoPINN: model, simulated data, Lightning training and float32-safe inference."""

from __future__ import annotations

from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.model import PtychoPINN

__all__ = ["DataConfig", "ModelConfig", "PtychoPINN", "TrainConfig"]
