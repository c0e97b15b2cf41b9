"""PyTorch PtychoPINN: model, simulated data, Lightning training and float32-safe inference.

The package is imported lazily: ``import ptycho_torch.errors`` (the exit-code edge every CLI
shares, the torch-free host included) does not import torch; ``ptycho_torch.PtychoPINN`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
    from ptycho_torch.model import PtychoPINN

__all__ = ["DataConfig", "ModelConfig", "PtychoPINN", "TrainConfig"]

_LAZY = {
    "DataConfig": "ptycho_torch.config",
    "ModelConfig": "ptycho_torch.config",
    "TrainConfig": "ptycho_torch.config",
    "PtychoPINN": "ptycho_torch.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ptycho_torch' has no attribute {name!r}")
