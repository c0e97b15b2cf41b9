"""Weights between the PyTorch model and the twin, by name: conv kernels OIHW <-> HWIO.

The twin's Conv2D layers are named after the PyTorch module paths, so a PyTorch key
``<path>.weight`` / ``<path>.bias`` is the kernel / bias of the Keras layer ``<path>``;
``log_scale`` lives in the layer ``intensity_scale`` and ``probe_re``/``probe_im`` in
``far_field``. The probe moves as the model holds it (already normalised by the original's
``probe_scale * mean|disk * probe|``; nothing is divided here). Transfers are exact (a transpose
moves bytes, it does not round).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.tf_twin.errors import WeightTransferError
from ptycho_torch.config import ModelConfig

if TYPE_CHECKING:
    import keras
    import torch

__all__ = [
    "keras_weights_to_model_file",
    "load_torch_state",
    "twin_state_dict",
    "twin_to_torch_model",
]

log = logging.getLogger(__name__)

_OIHW_TO_HWIO = (2, 3, 1, 0)
_HWIO_TO_OIHW = (3, 2, 0, 1)
_STATE_LAYERS = {"intensity_scale": ("log_scale",), "far_field": ("probe_re", "probe_im")}


@dataclass(frozen=True)
class _Slot:
    """One twin variable, in the layout of the PyTorch state-dict entry it corresponds to."""

    variable: Any  # keras.Variable
    kernel: bool  # conv kernel: HWIO here, OIHW in PyTorch

    @property
    def torch_shape(self) -> tuple[int, ...]:
        shape = tuple(int(d) for d in self.variable.shape)
        return tuple(shape[a] for a in _HWIO_TO_OIHW) if self.kernel else shape

    def to_torch(self) -> np.ndarray:
        value = np.asarray(self.variable.numpy())
        # np.array(order="C"), not ascontiguousarray: that turns the 0-d log_scale into shape (1,)
        return np.array(value.transpose(_HWIO_TO_OIHW) if self.kernel else value, order="C")

    def from_torch(self, value: np.ndarray) -> np.ndarray:
        return np.array(value.transpose(_OIHW_TO_HWIO) if self.kernel else value, order="C")


def _slots(twin: keras.Model) -> dict[str, _Slot]:
    """Every twin variable, keyed by its PyTorch state-dict name."""
    import keras

    slots: dict[str, _Slot] = {}
    for layer in twin.layers:
        if isinstance(layer, keras.layers.Conv2D):
            slots[f"{layer.name}.weight"] = _Slot(layer.kernel, True)
            slots[f"{layer.name}.bias"] = _Slot(layer.bias, False)
        elif layer.name in _STATE_LAYERS:
            for attr in _STATE_LAYERS[layer.name]:
                slots[attr] = _Slot(getattr(layer, attr), False)
    return slots


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _mismatches(
    expected: Mapping[str, tuple[int, ...]], state: Mapping[str, np.ndarray]
) -> list[str]:
    """Every name missing from or unexpected in ``state``, every misshapen or non-float32 entry."""
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing {missing}")
    if unexpected:
        problems.append(f"unexpected {unexpected}")
    for name in sorted(set(expected) & set(state)):
        want, got = expected[name], tuple(state[name].shape)
        if want != got:
            problems.append(f"{name}: expected shape {list(want)}, found {list(got)}")
        elif state[name].dtype != np.float32:
            problems.append(f"{name}: expected float32, found {state[name].dtype}")
    return problems


def load_torch_state(twin: keras.Model, state_dict: Mapping[str, Any]) -> None:
    """Copy a PyTorch ``PtychoPINN`` state dict (tensors or arrays) into a twin built with the
    weights' ModelConfig (conv kernels OIHW -> HWIO).

    Raises:
        WeightTransferError: names missing or unexpected, shapes or dtypes that do not fit
            (all listed at once); the twin is left unchanged.
    """
    slots = _slots(twin)
    state = {k: _as_numpy(v) for k, v in state_dict.items()}
    problems = _mismatches({k: s.torch_shape for k, s in slots.items()}, state)
    if problems:
        raise WeightTransferError(
            f"PyTorch state dict does not fit the twin ({len(slots)} tensors, PyTorch layout): "
            + "; ".join(problems)
            + ". Build the twin with the ModelConfig the weights were trained with "
            "(N, gridsize, n_filters_scale, object_big, probe_big, pad_object)."
        )
    for name, slot in slots.items():
        slot.variable.assign(slot.from_torch(state[name]))
    log.debug("loaded %d PyTorch tensors into the twin", len(slots))


def twin_state_dict(twin: keras.Model) -> dict[str, np.ndarray]:
    """The twin's weights as a PyTorch state dict of float32 numpy arrays (HWIO -> OIHW)."""
    return {name: slot.to_torch() for name, slot in sorted(_slots(twin).items())}


def twin_to_torch_model(twin: keras.Model, config: ModelConfig) -> Any:
    """A ``PtychoPINN(config)`` (eval, float32) holding the twin's weights (else
    ``WeightTransferError``)."""
    import torch

    from ptycho_torch.model import PtychoPINN

    model = PtychoPINN(config)
    state = twin_state_dict(twin)
    problems = _mismatches({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    if problems:
        raise WeightTransferError(
            f"twin weights do not fit PtychoPINN({config}): {'; '.join(problems)}; build the "
            "twin with the same ModelConfig"
        )
    tensors: dict[str, torch.Tensor] = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    model.load_state_dict(tensors, strict=True)
    return model.float().eval()


def keras_weights_to_model_file(
    keras_weights_path: str | Path, config: ModelConfig, out_path: str | Path
) -> Path:
    """Convert a Keras ``.weights.h5`` written by ``save_weights`` of the twin built with
    ``config`` into a ``ptycho_torch`` model file (``--checkpoint`` of ``export build``).

    Raises:
        WeightTransferError: the file is missing or its weights do not fit ``config``.
    """
    from parity.tf_twin.model import build_twin
    from ptycho_torch.checkpoint import save_model

    path = Path(keras_weights_path)
    if not path.is_file():
        raise WeightTransferError(
            f"Keras weights file {path} does not exist; write one with model.save_weights(...)"
        )
    twin = build_twin(config)
    try:
        twin.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise WeightTransferError(
            f"cannot load {path} into the twin for {config}: {detail[:400]}. The file must come "
            "from save_weights of a model with the twin's layout and this ModelConfig."
        ) from None
    model = twin_to_torch_model(twin, config)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, out)
    log.info("wrote %s from Keras weights %s", out, path)
    return out
