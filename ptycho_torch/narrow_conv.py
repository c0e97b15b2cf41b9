"""3x3 convolutions with one output or one input channel, partly as matrix products.

oneDNN runs the network's wide convolutions well in channels-last memory, but a 3x3
convolution with one output channel (each decoder's last two) or one input channel (the
encoder's first) runs at a few GFLOP/s in its forward (one output) and weight gradient (both),
and a one-output-channel convolution converts its channels-last input to NCHW first. Those
parts are written here as matrix products of the NHWC tensor with the nine taps, which are
memory-bound instead; oneDNN keeps what it does well (the input gradients, the one-input
forward). The same sums in another order: float32 round-off.

Notation: ``x (B, C, H, W)``, weight ``(O, C, 3, 3)``, "same" padding (1), stride 1; the
nine taps ``k = 3 * kh + kw``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["NarrowConvs", "conv3x3_narrow", "is_narrow"]

_TAPS = [(kh, kw) for kh in range(3) for kw in range(3)]


def is_narrow(conv: torch.nn.Conv2d) -> bool:
    """A 3x3, stride 1, padding 1, ungrouped convolution with a bias and one output or one input
    channel: one that :func:`conv3x3_narrow` runs faster than oneDNN."""
    plain = (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
    )
    return plain and (conv.out_channels == 1 or conv.in_channels == 1)


def _shift_sum(z: Tensor) -> Tensor:
    """``y[b, h, w] = sum_k z[b, h + kh - 1, w + kw - 1, k]`` (zero outside): ``(B, H, W, 9)`` ->
    ``(B, H, W)``."""
    _, h, w, _ = z.shape
    y = z[..., 4].clone()  # the centre tap covers every pixel
    for k, (kh, kw) in enumerate(_TAPS):
        if k == 4:
            continue
        dh, dw = kh - 1, kw - 1  # y[h, w] += z[h + dh, w + dw, k]
        y[:, max(0, -dh) : h - max(0, dh), max(0, -dw) : w - max(0, dw)] += z[
            :, max(0, dh) : h + min(0, dh), max(0, dw) : w + min(0, dw), k
        ]
    return y


def _shifted(g: Tensor, sign: int = 1) -> Tensor:
    """``(B, H, W)`` -> ``(B, H, W, 9)``: ``out[b, h, w, k] = g[b, h - s (kh - 1), w - s (kw - 1)]``
    (zero outside) for ``s = sign``. ``sign=1``: the adjoint of :func:`_shift_sum`; ``sign=-1``:
    the nine taps of a one-channel image (its im2col)."""
    b, h, w = g.shape
    out = g.new_zeros(b, h, w, 9)
    for k, (kh, kw) in enumerate(_TAPS):
        dh, dw = sign * (kh - 1), sign * (kw - 1)  # out[h + dh, w + dw, k] = g[h, w]
        out[:, max(0, dh) : h + min(0, dh), max(0, dw) : w + min(0, dw), k] = g[
            :, max(0, -dh) : h - max(0, dh), max(0, -dw) : w - max(0, dw)
        ]
    return out


def _grad_input(grad: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """oneDNN's input gradient of the convolution (fast for both shapes here)."""
    out = torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
    )
    return out[0]


def _nhwc(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W, C)``, contiguous (a view when channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


class _OneOutput(torch.autograd.Function):
    """``conv2d(x, weight, bias, padding=1)`` for ``weight (1, C, 3, 3)``: per pixel, the nine
    taps' channel sums (one matrix product of the NHWC input), then their shifted sum."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        b, c, h, w = x.shape
        xh = _nhwc(x).reshape(-1, c)  # (B*H*W, C)
        z = (xh @ weight.reshape(c, 9)).reshape(b, h, w, 9)  # weight[0, c, kh, kw]
        ctx.save_for_backward(x, xh, weight)
        return (_shift_sum(z) + bias).unsqueeze(1)  # (B, 1, H, W)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, xh, weight = ctx.saved_tensors
        b, c, h, w = x.shape
        grad_x = _grad_input(grad, x, weight) if ctx.needs_input_grad[0] else None
        gz = _shifted(grad.reshape(b, h, w)).reshape(-1, 9)  # (B*H*W, 9)
        grad_w = (xh.t() @ gz).reshape(1, c, 3, 3)
        return grad_x, grad_w, grad.sum().reshape(1)


class _OneInput(torch.autograd.Function):
    """``conv2d(x, weight, bias, padding=1)`` for ``weight (O, 1, 3, 3)``: oneDNN's forward; the
    weight gradient as one matrix product of the image's nine taps and the output gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        # torch cannot tell the layout of a one-channel input and a (O, 1, 3, 3) weight and
        # writes NCHW; the next convolution reads channels-last
        return F.conv2d(x, weight, bias, padding=1).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        b, _, h, w = x.shape
        grad_x = _grad_input(grad, x, weight) if ctx.needs_input_grad[0] else None
        gy = _nhwc(grad).reshape(b * h * w, -1)  # (B*H*W, O)
        taps = _shifted(x.reshape(b, h, w), sign=-1)  # (B, H, W, 9): x[h + kh - 1, w + kw - 1]
        grad_w = (taps.reshape(-1, 9).t() @ gy).t().reshape(-1, 1, 3, 3)
        return grad_x, grad_w, gy.sum(dim=0)


def conv3x3_narrow(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a weight ``(1, C, 3, 3)`` or ``(O, 1, 3, 3)``."""
    if weight.shape[0] == 1:
        return _OneOutput.apply(x, weight, bias)
    return _OneInput.apply(x, weight, bias)


class NarrowConvs:
    """Route a model's narrow convolutions (:func:`is_narrow`) through :func:`conv3x3_narrow`
    while installed (:meth:`install`, :meth:`remove`); the weights stay where they are. Inputs
    that are not float32 CPU tensors outside autocast take the module's own forward."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and is_narrow(m)]

    def install(self) -> None:
        for conv in self.convs:
            conv.forward = _routed_forward(conv)  # type: ignore[method-assign]

    def remove(self) -> None:
        for conv in self.convs:
            conv.__dict__.pop("forward", None)

    @staticmethod
    def routed(conv: torch.nn.Module) -> bool:
        """Whether ``conv`` runs through :func:`conv3x3_narrow` now."""
        return "forward" in conv.__dict__


def _routed_forward(conv: torch.nn.Conv2d) -> Any:
    own = conv.forward

    def forward(x: Tensor) -> Tensor:
        bias = conv.bias
        cpu32 = x.device.type == "cpu" and x.dtype == torch.float32
        if bias is None or not cpu32 or torch.is_autocast_enabled("cpu"):
            return own(x)
        return conv3x3_narrow(x, conv.weight, bias)

    return forward
