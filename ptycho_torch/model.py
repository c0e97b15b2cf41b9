"""The PtychoPINN network (ARCHITECTURE.md, "The network"), in the nanoGPT manner.

Layout is NCHW: ``(B, C, N, N)`` with ``C = gridsize**2`` patches per sample.
``predict`` is the exported object head (real tensors only, no data-dependent branching);
``forward`` is the physics forward used for training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ptycho_torch.config import ModelConfig
from ptycho_torch.physics import (
    centre_mask,
    diffraction_amplitude,
    extract_patches,
    gaussian_kernel,
    gaussian_smooth,
    illuminate,
    pad_to_canvas,
    probe_disk_mask,
    reassemble_patches,
    trim_canvas,
)

__all__ = [
    "PtychoPINN",
    "decoder_filters",
    "encoder_filters",
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


class PtychoPINN(nn.Module):
    """Encoder and two decoders (amplitude, phase), plus the physics forward model.

    Buffers ``probe_re``/``probe_im`` hold the normalised probe (N, N) that the forward
    multiplies by, so that it is saved with the weights and baked into exported physics heads;
    ``log_scale`` is the intensity scale's logarithm.
    """

    __constants__ = ["smoothing", "masked", "canvas", "N", "C", "out_channels"]

    def __init__(self, config: ModelConfig, probe: np.ndarray | Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.N = config.N
        self.C = config.C
        self.out_channels = config.out_channels
        self.canvas = config.padded_size  # the original's reassembly canvas
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(config.intensity_scale), dtype=torch.float32),
            requires_grad=config.intensity_scale_trainable,
        )
        blocks = []
        in_channels = config.C
        for filters in encoder_filters(config):
            blocks.append(DownBlock(in_channels, filters))
            in_channels = filters
        self.encoder = nn.Sequential(*blocks)
        self.amplitude_decoder = Decoder(config, in_channels, config.amp_activation)
        self.phase_decoder = Decoder(config, in_channels, "pi_tanh")
        self.smoothing = config.gaussian_smoothing_sigma > 0
        self.masked = config.probe_mask
        sigma = config.gaussian_smoothing_sigma if self.smoothing else 1.0
        self.register_buffer("smoothing_kernel", gaussian_kernel(sigma), persistent=False)
        self.register_buffer("disk_mask", probe_disk_mask(config.N), persistent=False)
        self.register_buffer("probe_re", torch.ones(config.N, config.N))
        self.register_buffer("probe_im", torch.zeros(config.N, config.N))
        if probe is not None:
            self.set_probe(probe)

    def set_probe(self, probe_guess: np.ndarray | Tensor) -> None:
        """Normalise a complex ``(N, N)`` probe guess as the original does and store it.

        ``probe = probe_guess / (probe_scale * mean(|disk * probe_guess|))`` with the disk of
        :func:`ptycho_torch.physics.probe_disk_mask`; the norm is a float32 mean, the division
        is done in complex128 and rounded once to complex64 (bit-identical to the original).
        """
        guess = _as_complex_probe(probe_guess, self.N)
        mask = probe_disk_mask(self.N).numpy()
        norm = np.float32(self.config.probe_scale) * np.mean(np.abs(mask * guess))
        self.set_normalised_probe((guess.astype(np.complex128) / float(norm)).astype(np.complex64))

    def set_normalised_probe(self, probe: np.ndarray | Tensor) -> None:
        """Store a complex ``(N, N)`` probe as is (already normalised, e.g. imported)."""
        p = _as_complex_probe(probe, self.N)
        with torch.no_grad():
            self.probe_re.copy_(torch.from_numpy(np.ascontiguousarray(p.real)))  # type: ignore[operator]
            self.probe_im.copy_(torch.from_numpy(np.ascontiguousarray(p.imag)))  # type: ignore[operator]

    def predict(self, diffraction: Tensor) -> tuple[Tensor, Tensor]:
        """Object head: ``(B, C, N, N)`` amplitudes in, ``(amplitude, phase)`` out.

        Both outputs are ``(B, out_channels, N, N)`` float32; out_channels is C when object_big.
        """
        x = diffraction / torch.exp(self.log_scale)  # intensity scaler
        z = self.encoder(x)  # (B, F, N/2**k, N/2**k)
        return self.amplitude_decoder(z), self.phase_decoder(z)

    def predict_diffraction(self, amplitude: Tensor, phase: Tensor, positions: Tensor) -> Tensor:
        """Physics forward: object patches -> predicted diffraction amplitude ``(B, C, N, N)``.

        Args:
            amplitude, phase: ``(B, out_channels, N, N)`` from :meth:`predict`.
            positions: ``(B, C, 2)`` patch positions ``(x, y)`` in pixels (scan position minus
                group centre).
        """
        steps = self.physics_steps(amplitude, phase, positions)
        return steps["pred_amplitude"]

    def physics_steps(
        self, amplitude: Tensor, phase: Tensor, positions: Tensor
    ) -> dict[str, Tensor]:
        """Every intermediate of the physics forward, named after the original's tensors.

        ``obj`` (B, C, N, N) patches, ``padded_obj`` (B, P, P) canvas, ``trimmed_obj``
        (B, N, N), ``extracted`` and ``illuminated`` (B, C, N, N), ``pred_amplitude_unscaled``
        and ``pred_amplitude`` (B, C, N, N); complex values as ``_re``/``_im`` pairs.
        """
        re = amplitude * torch.cos(phase)  # object = amplitude * exp(i * phase)
        im = amplitude * torch.sin(phase)
        if self.out_channels == self.C:  # object.big: reassemble the C patches
            canvas_re, canvas_im = reassemble_patches(re, im, positions, self.canvas)
        else:  # one shared patch, padded onto the canvas as is
            canvas_re, canvas_im = pad_to_canvas(re, im, self.canvas)
        trimmed_re, trimmed_im = trim_canvas(canvas_re, canvas_im, self.N)
        patch_re, patch_im = extract_patches(canvas_re, canvas_im, positions, self.N)
        probe_re, probe_im = self.probe_re, self.probe_im
        exit_re, exit_im = illuminate(patch_re, patch_im, probe_re, probe_im)  # type: ignore[arg-type]
        if self.smoothing:  # the original smooths the exit wave, then masks it
            exit_re = gaussian_smooth(exit_re, self.smoothing_kernel)  # type: ignore[arg-type]
            exit_im = gaussian_smooth(exit_im, self.smoothing_kernel)  # type: ignore[arg-type]
        if self.masked:
            exit_re = exit_re * self.disk_mask  # type: ignore[operator]
            exit_im = exit_im * self.disk_mask  # type: ignore[operator]
        unscaled = diffraction_amplitude(exit_re, exit_im)
        return {
            "obj_re": re,
            "obj_im": im,
            "padded_obj_re": canvas_re,
            "padded_obj_im": canvas_im,
            "trimmed_obj_re": trimmed_re,
            "trimmed_obj_im": trimmed_im,
            "extracted_re": patch_re,
            "extracted_im": patch_im,
            "illuminated_re": exit_re,
            "illuminated_im": exit_im,
            "pred_amplitude_unscaled": unscaled,
            "pred_amplitude": unscaled * torch.exp(self.log_scale),  # inverse intensity scaler
        }

    def forward(self, diffraction: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training forward: ``(amplitude, phase, pred_amplitude)``, each ``(B, ., N, N)``."""
        amplitude, phase = self.predict(diffraction)
        return amplitude, phase, self.predict_diffraction(amplitude, phase, positions)


def _as_complex_probe(probe: np.ndarray | Tensor, n: int) -> np.ndarray:
    p = probe.detach().cpu().numpy() if isinstance(probe, Tensor) else np.asarray(probe)
    if p.shape != (n, n):
        raise ValueError(f"probe must have shape ({n}, {n}), got {tuple(p.shape)}")
    return p.astype(np.complex64)
