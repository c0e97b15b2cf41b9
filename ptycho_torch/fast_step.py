"""The training step's computation, run as fast as this machine allows (the speed settings of
:class:`~ptycho_torch.config.TrainConfig`: ``channels_last``, ``narrow_convs``, ``fused_conv_relu``, ``fused_adam``,
``compile``, ``precision``; ``in_memory_data`` is :mod:`ptycho_torch.tensor_data`'s).

Training (:class:`ptycho_torch.lightning_module.PtychoLightning`) and ``python -m export
bench-train`` (:mod:`bench.train_step`) take every piece from here, so the benchmark times the
step that training runs:

- :func:`prepare_network`: channels-last weights (oneDNN's NHWC convolutions, forward and
  backward, take no layout conversions), the one-channel convolutions of
  :mod:`ptycho_torch.narrow_conv` and the fused convolution + ReLU of
  :mod:`ptycho_torch.fused_conv`, undone by :func:`restore_layout` after training so that saved
  files keep their usual layout;
- :func:`make_adam`: ``torch.optim.Adam``, with the fused kernel unless switched off;
- :class:`TrainingLoss`: the loss of a batch (Poisson NLL, optionally plus MAE), compiled with
  ``torch.compile`` when asked (falling back to eager if compiling fails) and with the network's
  convolutions in bfloat16 under ``precision="bf16-mixed"`` (the physics and the loss stay float32).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ptycho_torch.config import TrainConfig
from ptycho_torch.fused_conv import FusedConvPairs
from ptycho_torch.model import PtychoPINN
from ptycho_torch.narrow_conv import NarrowConvs

__all__ = [
    "TrainingLoss",
    "make_adam",
    "poisson_nll",
    "prepare_network",
    "restore_layout",
]

logger = logging.getLogger(__name__)


def poisson_nll(pred_amplitude: Tensor, target_amplitude: Tensor) -> Tensor:
    """Mean Poisson negative log-likelihood on intensities: ``pred_I - target_I * log(pred_I)``.

    As the original computes it (``tf.nn.log_poisson_loss`` with ``compute_full_loss=False`` on
    ``log(pred_I)``): no epsilon inside the log, so it reproduces the original's
    ``negloglik`` to float32 round-off (a zero predicted intensity gives ``-inf``/NaN there too).
    """
    pred_i = pred_amplitude.square()
    target_i = target_amplitude.square()
    return (pred_i - target_i * torch.log(pred_i)).mean()


def prepare_network(model: PtychoPINN, config: TrainConfig) -> None:
    """Put the network's weights in the memory layout the step runs fastest with, and route its
    one-channel convolutions through :mod:`ptycho_torch.narrow_conv` (in place)."""
    if config.channels_last:
        _to_layout(model, torch.channels_last)
        if config.narrow_convs:  # written for channels-last tensors
            NarrowConvs(model).install()
    if config.fused_conv_relu:
        FusedConvPairs(model).install()


def restore_layout(model: PtychoPINN) -> None:
    """Back to the usual (contiguous NCHW) layout and convolutions, as saved files, exporters and
    inference expect."""
    _to_layout(model, torch.contiguous_format)
    NarrowConvs(model).remove()
    FusedConvPairs(model).remove()


def _to_layout(model: PtychoPINN, memory_format: torch.memory_format) -> None:
    """``model.to(memory_format=...)``: the 4-D weights (the convolutions') in place, the same
    Parameter objects (an optimizer built on them keeps them)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=memory_format)


def make_adam(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam as the original's Keras Adam is configured (defaults but the rate), fused or not."""
    fused = True if config.fused_adam else None
    return torch.optim.Adam(params, lr=config.learning_rate, fused=fused)


class TrainingLoss:
    """``loss(diffraction, positions)``: the training loss of one batch of ``model``.

    ``diffraction`` ``(B, C, N, N)`` is both the network input and the target amplitude;
    ``positions`` ``(B, C, 2)``. The loss is ``nll_weight * poisson_nll + mae_weight * MAE``.
    """

    def __init__(self, model: PtychoPINN, config: TrainConfig) -> None:
        self.model, self.config = model, config
        self._run: Callable[[Tensor, Tensor], Tensor] = self.eager
        if config.compile:
            self._run = torch.compile(self.eager)

    def __call__(self, diffraction: Tensor, positions: Tensor) -> Tensor:
        if self._run == self.eager:
            return self.eager(diffraction, positions)
        try:
            return self._run(diffraction, positions)
        except Exception as exc:  # any compiler failure: train on, eagerly, and say so once
            logger.warning(
                "torch.compile failed (%s: %s); training continues without it "
                "(--no-compile turns it off)",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            self._run = self.eager
            return self.eager(diffraction, positions)

    def eager(self, diffraction: Tensor, positions: Tensor) -> Tensor:
        """The loss without the compiler."""
        model, cfg = self.model, self.config
        if cfg.channels_last:
            diffraction = diffraction.contiguous(memory_format=torch.channels_last)
        if cfg.precision == "bf16-mixed":
            with torch.autocast(diffraction.device.type, dtype=torch.bfloat16):
                amplitude, phase = model.predict(diffraction)
            amplitude, phase = amplitude.float(), phase.float()
        else:
            amplitude, phase = model.predict(diffraction)
        pred = model.predict_diffraction(amplitude, phase, positions)
        loss = cfg.nll_weight * poisson_nll(pred, diffraction)
        if cfg.mae_weight > 0:
            loss = loss + cfg.mae_weight * (pred - diffraction).abs().mean()
        return loss
