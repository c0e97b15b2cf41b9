"""Differentiable forward model: overlap constraint, probe illumination and far-field diffraction.

Complex fields are carried as pairs of real tensors ``(re, im)`` up to the FFT, so that every
exporter (TorchScript, torch.export, ONNX) sees only real arithmetic outside the one ``fft2``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "diffraction_amplitude",
    "extract_patches",
    "overlap_constraint",
    "reassemble_patches",
    "shift_matrix",
]


def shift_matrix(n_out: int, n_in: int, shift: Tensor) -> Tensor:
    """Bilinear translation with zero fill along one axis, as a matrix.

    ``out[u] = sum_j M[u, j] * in[j]`` places the centre of an ``n_in`` signal at the centre of
    an ``n_out`` signal moved by ``shift`` pixels. ``M[u, j] = max(0, 1 - |u - j - c - shift|)``
    with ``c = (n_out - n_in) / 2``: the hat kernel is exactly linear interpolation.

    Args:
        n_out: length of the output axis.
        n_in: length of the input axis.
        shift: shifts in pixels, any shape ``S``.

    Returns:
        ``S + (n_out, n_in)`` matrices, same dtype as ``shift``.
    """
    u = torch.arange(n_out, dtype=shift.dtype, device=shift.device).reshape(n_out, 1)
    j = torch.arange(n_in, dtype=shift.dtype, device=shift.device).reshape(1, n_in)
    centre = (n_out - n_in) / 2.0
    distance = u - j - centre - shift.unsqueeze(-1).unsqueeze(-1)  # S + (n_out, n_in)
    return torch.clamp(1.0 - torch.abs(distance), min=0.0)


def reassemble_patches(
    re: Tensor, im: Tensor, offsets: Tensor, canvas: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Place the C patches of each sample at their offsets on one canvas (summed, with weights).

    Args:
        re, im: ``(B, C, N, N)`` real and imaginary parts of the object patches.
        offsets: ``(B, C, 2)`` patch offsets ``(x, y)`` in pixels relative to the group centre.
        canvas: side of the square canvas in pixels.

    Returns:
        ``(sum_re, sum_im, weight)``, each ``(B, canvas, canvas)``; ``weight`` counts how much
        of each canvas pixel the patches cover (bilinear), so ``sum / weight`` averages overlaps.
    """
    n = re.shape[-1]
    px = shift_matrix(canvas, n, offsets[..., 0])  # (B, C, canvas, N)
    py = shift_matrix(canvas, n, offsets[..., 1])  # (B, C, canvas, N)
    ones = torch.ones_like(re)
    sum_re = (py @ re @ px.transpose(-1, -2)).sum(dim=1)  # (B, canvas, canvas)
    sum_im = (py @ im @ px.transpose(-1, -2)).sum(dim=1)
    weight = (py @ ones @ px.transpose(-1, -2)).sum(dim=1)
    return sum_re, sum_im, weight


def extract_patches(re: Tensor, im: Tensor, offsets: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Cut ``n x n`` patches out of a canvas at the given offsets (bilinear, zero fill).

    Args:
        re, im: ``(B, M, M)`` canvas.
        offsets: ``(B, C, 2)`` offsets ``(x, y)`` in pixels.
        n: patch side.

    Returns:
        ``(re, im)`` patches, each ``(B, C, n, n)``.
    """
    canvas = re.shape[-1]
    ex = shift_matrix(canvas, n, offsets[..., 0])  # (B, C, M, n)
    ey = shift_matrix(canvas, n, offsets[..., 1])
    re_c = re.unsqueeze(1)  # (B, 1, M, M)
    im_c = im.unsqueeze(1)
    out_re = ey.transpose(-1, -2) @ re_c @ ex  # (B, C, n, n)
    out_im = ey.transpose(-1, -2) @ im_c @ ex
    return out_re, out_im


def overlap_constraint(
    re: Tensor, im: Tensor, offsets: Tensor, canvas: int
) -> tuple[Tensor, Tensor]:
    """Average overlapping patches on a shared canvas, then cut each patch back out.

    This is the real-space overlap constraint of PtychoPINN for gridsize > 1: neighbouring
    patches must agree where they overlap.
    """
    sum_re, sum_im, weight = reassemble_patches(re, im, offsets, canvas)
    covered = weight > 1e-3
    safe = torch.where(covered, weight, torch.ones_like(weight))
    avg_re = torch.where(covered, sum_re / safe, torch.zeros_like(sum_re))
    avg_im = torch.where(covered, sum_im / safe, torch.zeros_like(sum_im))
    return extract_patches(avg_re, avg_im, offsets, re.shape[-1])


def diffraction_amplitude(re: Tensor, im: Tensor, probe_re: Tensor, probe_im: Tensor) -> Tensor:
    """Far-field diffraction amplitude of probe-illuminated patches.

    ``sqrt(fftshift(|FFT2(probe * patch)|^2 / (N * N)))``.

    Args:
        re, im: ``(B, C, N, N)`` object patches.
        probe_re, probe_im: ``(N, N)`` probe (already divided by the probe scale).

    Returns:
        ``(B, C, N, N)`` float32 amplitudes.
    """
    n = re.shape[-1]
    exit_re = re * probe_re - im * probe_im
    exit_im = re * probe_im + im * probe_re
    field = torch.fft.fft2(torch.complex(exit_re, exit_im))
    intensity = (field.real * field.real + field.imag * field.imag) / float(n * n)
    shifted = torch.roll(intensity, shifts=(n // 2, n // 2), dims=(-2, -1))  # fftshift, even N
    return torch.sqrt(shifted)
