"""The PtychoPINN network (ARCHITECTURE.md, "The network"), in the nanoGPT manner; its blocks
are :mod:`ptycho_torch.blocks`.

Layout is NCHW: ``(B, C, N, N)`` with ``C = gridsize**2`` patches per sample.
``predict`` is the exported object head (real tensors only, no data-dependent branching);
``forward`` is the physics forward used for training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ptycho_torch.blocks import Decoder, DownBlock, encoder_filters
from ptycho_torch.config import ModelConfig
from ptycho_torch.physics import (
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

__all__ = ["PtychoPINN"]


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
