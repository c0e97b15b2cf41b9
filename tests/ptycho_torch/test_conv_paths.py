"""The training-only convolution paths compute what ``F.conv2d`` (+ ReLU) computes (issue 23)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from ptycho_torch.fused_conv import conv_relu
from ptycho_torch.narrow_conv import conv3x3_narrow

Conv = Callable[[Tensor, Tensor, Tensor], Tensor]


def _case(c_in: int, c_out: int, size: int, input_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(c_in * 100 + c_out)
    x = torch.randn(3, c_in, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c_out, c_in, 3, 3, generator=g) * 0.2
    b = torch.randn(c_out, generator=g) * 0.1
    w = w.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(input_grad), w.requires_grad_(), b.requires_grad_()


def _value_and_grads(fn: Conv, x: Tensor, w: Tensor, b: Tensor, grad: Tensor) -> list[Tensor]:
    y = fn(x, w, b)
    inputs = [t for t in (x, w, b) if t.requires_grad]
    return [y, *torch.autograd.grad(y, inputs, grad)]


@pytest.mark.parametrize(
    ("c_in", "c_out", "input_grad"),
    [(8, 1, True), (5, 1, False), (1, 6, False), (1, 6, True)],
    ids=["one-output", "one-output-no-input-grad", "one-input", "one-input-input-grad"],
)
def test_narrow_convolution_equals_conv2d_forward_and_backward(
    c_in: int, c_out: int, input_grad: bool
) -> None:
    x, w, b = _case(c_in, c_out, 9, input_grad)
    grad = torch.randn(3, c_out, 9, 9).contiguous(memory_format=torch.channels_last)
    ours = _value_and_grads(conv3x3_narrow, x, w, b, grad)
    reference = _value_and_grads(lambda x, w, b: F.conv2d(x, w, b, padding=1), x, w, b, grad)
    for a, r in zip(ours, reference, strict=True):
        assert a.shape == r.shape
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_fused_conv_relu_gives_the_same_bits_as_conv_then_relu() -> None:
    x, w, b = _case(6, 7, 10, True)
    conv = torch.nn.Conv2d(6, 7, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(b)  # type: ignore[union-attr]
    weight, bias = conv.weight, conv.bias
    assert bias is not None
    grad = torch.randn(3, 7, 10, 10)
    fused = _value_and_grads(lambda x, w, b: conv_relu(x, conv), x, weight, bias, grad)
    plain = _value_and_grads(
        lambda x, w, b: torch.relu(F.conv2d(x, w, b, padding=1)), x, weight, bias, grad
    )
    for a, r in zip(fused, plain, strict=True):
        assert torch.equal(a, r)
