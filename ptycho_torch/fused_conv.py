"""Convolution + ReLU as one oneDNN primitive in training (``TrainConfig.fused_conv_relu``).

Each :class:`~ptycho_torch.model.ConvPair` runs ``relu(conv(x))`` twice. Separately, the ReLU
reads and writes the convolution's whole output again; oneDNN applies it as a post-op while the
output is still in cache (``torch.ops.mkldnn._convolution_pointwise``, the fusion torch's own
compiler uses for inference). The backward is autograd's for the pair: ``threshold_backward`` on
the ReLU's output, then ``convolution_backward``; forward and backward give the same bits as the
separate operators.

The fused path runs for float32 CPU tensors outside autocast; anything else (a GPU, bfloat16
autocast, a torch built without oneDNN) takes the module's own forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ptycho_torch.blocks import ConvPair
from ptycho_torch.narrow_conv import NarrowConvs

__all__ = ["FusedConvPairs", "conv_relu", "fusable"]

_ONE = [1, 1]


def fusable(x: Tensor) -> bool:
    """Whether :func:`conv_relu` runs fused for input ``x``."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
    )


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x, weight, bias, padding=1))``, 3x3, stride 1."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        y = torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, _ONE, _ONE, _ONE, 1, "relu", [], ""
        )
        ctx.save_for_backward(x, weight, y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, y = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, y, 0)  # ReLU's backward, on its output
        mask = [ctx.needs_input_grad[0], True, True]
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]], _ONE, _ONE, _ONE, False, [0, 0], 1, mask
        )


def conv_relu(x: Tensor, conv: torch.nn.Conv2d) -> Tensor:
    """``relu(conv(x))``, fused when :func:`fusable` (``conv``: 3x3, padding 1, with a bias)."""
    if fusable(x) and conv.bias is not None:
        return _ConvReLU.apply(x, conv.weight, conv.bias)
    return torch.relu(conv(x))


class FusedConvPairs:
    """Route a model's :class:`ConvPair` modules through :func:`conv_relu` while installed.

    A convolution that :class:`~ptycho_torch.narrow_conv.NarrowConvs` handles keeps its own
    path (its ReLU stays separate).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.pairs = [m for m in model.modules() if isinstance(m, ConvPair)]

    def install(self) -> None:
        for pair in self.pairs:
            pair.forward = _fused_forward(pair)  # type: ignore[method-assign]

    def remove(self) -> None:
        for pair in self.pairs:
            pair.__dict__.pop("forward", None)


def _fused_forward(pair: ConvPair) -> Any:
    def forward(x: Tensor) -> Tensor:
        return _one(_one(x, pair.conv1), pair.conv2)

    return forward


def _one(x: Tensor, conv: torch.nn.Conv2d) -> Tensor:
    if NarrowConvs.routed(conv):
        return torch.relu(conv(x))
    return conv_relu(x, conv)
