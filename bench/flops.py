"""Floating-point work of the network, counted from its convolution modules' shapes.

The network is convolutions plus cheap element-wise work (ReLU, pooling, upsampling,
activations): convolutions are over 99% of its arithmetic. Each ``nn.Conv2d`` call is recorded
on one pattern (forward hooks), as ``2 * C_in * C_out * k_h * k_w * H_out * W_out`` FLOPs (a
multiply and an add per weight and output pixel). What is not counted (bias adds, element-wise
ops, the physics head's FFT) is left out on purpose: the figure is the work a GEMM-based
convolution must do, comparable with the GEMM ceiling.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ptycho_torch.model import PtychoPINN

__all__ = ["ConvShape", "conv_shapes", "distinct_shapes"]


@dataclass(frozen=True)
class ConvShape:
    """One convolution call on one pattern."""

    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    height: int  # output
    width: int
    padding: tuple[int, int]

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 for one pattern."""
        kh, kw = self.kernel
        return 2 * self.in_channels * self.out_channels * kh * kw * self.height * self.width

    def describe(self) -> str:
        """``64->128 3x3 @32x32``."""
        kh, kw = self.kernel
        return f"{self.in_channels}->{self.out_channels} {kh}x{kw} @{self.height}x{self.width}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "flops": self.flops, "shape": self.describe()}


def conv_shapes(model: PtychoPINN) -> list[ConvShape]:
    """Every convolution call of the object head (encoder and both decoders) on one pattern,
    in call order."""
    calls: list[ConvShape] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        assert isinstance(module, nn.Conv2d)
        calls.append(
            ConvShape(
                module.in_channels,
                module.out_channels,
                (int(module.kernel_size[0]), int(module.kernel_size[1])),
                int(out.shape[-2]),
                int(out.shape[-1]),
                (int(module.padding[0]), int(module.padding[1])),
            )
        )

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        x = torch.zeros(1, model.C, model.N, model.N)
        with torch.inference_mode():
            model.predict(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def distinct_shapes(calls: list[ConvShape]) -> list[tuple[ConvShape, int]]:
    """Each distinct shape with how often the network calls it, largest total work first."""
    counts = Counter(calls)
    return sorted(counts.items(), key=lambda item: -item[0].flops * item[1])
