"""The PtychoPINN network's building blocks (ARCHITECTURE.md, "The network"), one small
``nn.Module`` per concept: conv pairs, encoder and decoder blocks, the decoder head with its
centre and outer (border) paths, the activations. :class:`ptycho_torch.model.PtychoPINN` puts
them together. Layout is NCHW: ``(B, C, N, N)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ptycho_torch.config import ModelConfig
from ptycho_torch.physics import centre_mask

__all__ = [
    "ConvPair",
    "Decoder",
    "DecoderHead",
    "DownBlock",
    "OuterPath",
    "PiTanh",
    "UpBlock",
    "decoder_filters",
    "encoder_filters",
    "make_activation",
]


def encoder_filters(config: ModelConfig) -> list[int]:
    """Filters per encoder block: N=64 -> [32s, 64s, 128s], one more block per doubling of N."""
    base = config.n_filters_scale * (2048 // config.N)
    blocks = int(math.log2(config.N // 8))
    return [base * 2**i for i in range(blocks)]


def decoder_filters(config: ModelConfig) -> list[int]:
    """Filters per decoder block: N=64 -> [64s, 32s]; the output is at N/2 x N/2."""
    blocks = len(encoder_filters(config)) - 1
    return [32 * config.n_filters_scale * 2 ** (blocks - 1 - i) for i in range(blocks)]


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)  # TF padding="same"


class ConvPair(nn.Module):
    """``conv3x3 + ReLU``, twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


class DownBlock(nn.Module):
    """Encoder block: conv pair, then 2x2 max pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = ConvPair(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.convs(x))


class UpBlock(nn.Module):
    """Decoder block: conv pair, then nearest-neighbour upsampling by 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = ConvPair(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)
        # Nearest x2: the same copies as repeat_interleave on both axes (bit-identical), but it
        # exports as one ONNX Resize instead of Reshape/Expand pairs, which ONNX Runtime ran at
        # 31% of the whole model's CPU time (issue 14); deterministic on CUDA in nearest mode.
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


class PiTanh(nn.Module):
    """Phase activation: ``pi * tanh(x)``, range (-pi, pi)."""

    def forward(self, x: Tensor) -> Tensor:
        return math.pi * torch.tanh(x)


def make_activation(name: str) -> nn.Module:
    """The amplitude activation by name; the config has already rejected unknown names."""
    table: dict[str, type[nn.Module]] = {
        "sigmoid": nn.Sigmoid,
        "swish": nn.SiLU,
        "softplus": nn.Softplus,
        "relu": nn.ReLU,
        "pi_tanh": PiTanh,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(table)}")
    return table[name]()


class OuterPath(nn.Module):
    """Up block, conv and SiLU (swish): the object outside the central N/2 square."""

    def __init__(self, in_channels: int, filters: int, out_channels: int) -> None:
        super().__init__()
        self.up = UpBlock(in_channels, filters)
        self.conv = _conv3x3(filters, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.silu(self.conv(self.up(x)))


class DecoderHead(nn.Module):
    """Last stage of a decoder: (B, K, N/2, N/2) -> (B, out, N, N).

    With ``pad_object``: the first K-4 channels go through conv + activation and are zero-padded
    by N/4 on every side; with ``probe_big`` the last 4 channels go through an up block, conv and
    SiLU, and are kept only outside the central N/2 square (border mask). Without ``pad_object``:
    up block on all channels, conv, activation.
    """

    __constants__ = ["pad_object", "probe_big", "c_outer", "pad"]  # TorchScript folds branches

    def __init__(self, config: ModelConfig, in_channels: int, activation: str) -> None:
        super().__init__()
        n, out = config.N, config.out_channels
        self.c_outer = 4
        self.pad = n // 4
        self.pad_object = config.pad_object
        self.probe_big = config.probe_big and config.pad_object
        self.activation = make_activation(activation)
        outer_filters = config.n_filters_scale * (2048 // n)
        if not self.pad_object:
            # the "outer" path then is the whole head: up block, conv (activation applied below)
            self.centre_conv: nn.Module = nn.Identity()
            self.outer: nn.Module = nn.Sequential(
                UpBlock(in_channels, outer_filters), _conv3x3(outer_filters, out)
            )
        else:
            self.centre_conv = _conv3x3(in_channels - self.c_outer, out)
            self.outer = (
                OuterPath(self.c_outer, outer_filters, out) if self.probe_big else nn.Identity()
            )
        border = 1.0 - centre_mask(n)  # 0 on the central N/2 square, 1 outside
        self.register_buffer("border_mask", border, persistent=False)  # (N, N)

    def forward(self, x: Tensor) -> Tensor:  # (B, K, N/2, N/2)
        if not self.pad_object:
            return self.activation(self.outer(x))  # (B, out, N, N)
        k = x.shape[1]
        centre = self.activation(self.centre_conv(x[:, : k - self.c_outer]))
        p = self.pad
        centre = nn.functional.pad(centre, (p, p, p, p))  # (B, out, N, N)
        if not self.probe_big:
            return centre
        return centre + self.outer(x[:, k - self.c_outer :]) * self.border_mask


class Decoder(nn.Module):
    """Up blocks from the encoder's bottleneck to N/2, then the head."""

    def __init__(self, config: ModelConfig, in_channels: int, activation: str) -> None:
        super().__init__()
        blocks = []
        for filters in decoder_filters(config):
            blocks.append(UpBlock(in_channels, filters))
            in_channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.head = DecoderHead(config, in_channels, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(x))
