"""Safe checkpoint loading (``torch.load(weights_only=True)``) for Lightning and plain files.

Two layouts are accepted:
- a Lightning checkpoint: ``state_dict`` with keys prefixed ``model.`` and
  ``hyper_parameters["model_config"]`` (a plain dict);
- a plain model file: ``{"model_config": dict, "state_dict": dict}`` (what
  :func:`save_model` writes, e.g. after importing TensorFlow weights).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ptycho_torch.config import ModelConfig
from ptycho_torch.digest import arrays_sha256
from ptycho_torch.errors import CheckpointError, writing
from ptycho_torch.model import PtychoPINN

__all__ = ["load_model", "model_state_sha256", "read_checkpoint", "save_model"]

_LIGHTNING_PREFIX = "model."


def read_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read ``(config, model state dict)`` from a checkpoint without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass --checkpoint PATH to a .ckpt file"
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise CheckpointError(
            f"cannot read checkpoint {path} with torch.load(weights_only=True): {exc}. "
            "Expected a Lightning .ckpt written by `python -m export train` or a model file "
            "written by ptycho_torch.checkpoint.save_model."
        ) from None
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict'; found keys {_keys(raw)}")
    config_dict: Any = raw.get("model_config")
    if config_dict is None:
        config_dict = (raw.get("hyper_parameters") or {}).get("model_config")
    if not isinstance(config_dict, dict):
        raise CheckpointError(
            f"checkpoint {path} has no model_config (looked in 'model_config' and "
            "'hyper_parameters.model_config'); it was not written by ptycho_torch"
        )
    try:
        config = ModelConfig.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid model_config: {exc}") from None
    state = raw["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' is not a dict of tensors")
    bad = [
        str(k)
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(v.isfinite().all())
    ]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN/Inf weights in {bad[:5]}{' ...' if len(bad) > 5 else ''}; "
            "the training diverged or the file is damaged: use an earlier checkpoint"
        )
    if any(k.startswith(_LIGHTNING_PREFIX) for k in state):
        state = {
            k[len(_LIGHTNING_PREFIX) :]: v
            for k, v in state.items()
            if k.startswith(_LIGHTNING_PREFIX)
        }
    return config, state


def load_model(path: str | Path) -> PtychoPINN:
    """Build the model a checkpoint describes and load its weights (eval mode, CPU, float32)."""
    config, state = read_checkpoint(path)
    model = PtychoPINN(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model_config: {exc}") from None
    return model.float().eval()


def save_model(model: PtychoPINN, path: str | Path) -> None:
    """Write a plain model file that :func:`load_model` reads."""
    buffer = io.BytesIO()  # torch's file writer can abort the process when a write is refused
    torch.save({"model_config": model.config.to_dict(), "state_dict": model.state_dict()}, buffer)
    with writing(path):
        Path(path).write_bytes(buffer.getbuffer())


def model_state_sha256(model: PtychoPINN) -> str:
    """Digest of the weights (persistent state dict) that references and manifests record."""
    return arrays_sha256(model.state_dict())


def _keys(raw: object) -> list[str]:
    return sorted(map(str, raw)) if isinstance(raw, dict) else [type(raw).__name__]
