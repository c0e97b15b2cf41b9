"""Differentiable forward model of the original TensorFlow PtychoPINN, quirks included.

The steps follow the original (``hoidn/PtychoPINN``, ``ptycho/``) as its own arrays show them
(``../shared/reference/ptychopinn-tf``): the C object patches of a sample are reassembled on a
``padded_size`` canvas and divided by the reassembly of a centre mask plus 0.001, each patch is
cut back out, multiplied by the probe and transformed to a far-field amplitude.

Translations are bilinear with zero fill and are applied as matrices, one per axis, because a
2-D bilinear translation is separable. The weights are computed like an image warp computes
them: per output pixel, the float32 source coordinate ``u - shift``, its floor ``k`` and
fraction ``f``; the weight is ``1 - f`` on input pixel ``k`` and ``f`` on ``k + 1``. Computing
``f`` that way (not as ``1 - |u - j - shift|``, which rounds differently) matches the original's
canvas to 1.6e-7 of its peak at gridsize 2.

Complex fields are carried as pairs of real tensors ``(re, im)`` up to the FFT, so that every
exporter (TorchScript, torch.export, ONNX) sees only real arithmetic outside the one ``fft2``.

Offsets are ours: ``(x, y)`` = scan position minus group centre, in pixels; a patch is placed on
the canvas moved by ``+offset`` and cut out at ``+offset``. (The original's ``positions`` input
holds the negative of that.)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "CENTRE_MASK_EPS",
    "centre_mask",
    "diffraction_amplitude",
    "extract_patches",
    "gaussian_kernel",
    "gaussian_smooth",
    "illuminate",
    "pad_to_canvas",
    "probe_disk_mask",
    "reassemble_patches",
    "translation_weights",
    "trim_canvas",
]

CENTRE_MASK_EPS = 0.001  # the original divides by (reassembled centre masks + 0.001)


def probe_disk_mask(n: int) -> Tensor:
    """The original's probe mask: 1 where the distance to ``(n/2 - 0.5, n/2 - 0.5)`` is < n/4."""
    idx = torch.arange(n, dtype=torch.float64) - (n / 2 - 0.5)
    r = torch.sqrt(idx.reshape(n, 1) ** 2 + idx.reshape(1, n) ** 2)
    return (r < n / 4).to(torch.float32)


def centre_mask(n: int) -> Tensor:
    """``(n, n)``: ones on the central ``n/2 x n/2`` square (rows and columns n/4 .. 3n/4 - 1)."""
    mask = torch.zeros(n, n)
    mask[n // 4 : n - n // 4, n // 4 : n - n // 4] = 1.0
    return mask


def translation_weights(source: Tensor, first: int, n_in: int) -> Tensor:
    """Bilinear sampling weights with zero fill, as matrices.

    Args:
        source: ``S + (n_out,)`` float source coordinates, one per output pixel.
        first: coordinate of input pixel 0 (the padding in front of the input).
        n_in: number of input pixels.

    Returns:
        ``S + (n_out, n_in)``: ``1 - f`` at input ``floor(source)``, ``f`` at the next pixel.
    """
    k = torch.floor(source).unsqueeze(-1)  # S + (n_out, 1)
    f = source.unsqueeze(-1) - k
    j = torch.arange(n_in, dtype=source.dtype, device=source.device) + float(first)
    at_k = (j == k).to(source.dtype)
    at_next = (j == k + 1.0).to(source.dtype)
    return at_k * (1.0 - f) + at_next * f


def _placement(shift: Tensor, canvas: int, n: int) -> Tensor:
    """``S + (canvas, n)``: an ``n`` signal zero-padded to ``canvas`` and moved by ``+shift``."""
    u = torch.arange(canvas, dtype=shift.dtype, device=shift.device)
    return translation_weights(u - shift.unsqueeze(-1), (canvas - n) // 2, n)


def _cut(shift: Tensor, canvas: int, n: int) -> Tensor:
    """``S + (n, canvas)``: the centre ``n`` of a ``canvas`` signal moved by ``-shift``."""
    v = torch.arange(n, dtype=shift.dtype, device=shift.device) + float((canvas - n) // 2)
    return translation_weights(v + shift.unsqueeze(-1), 0, canvas)


def reassemble_patches(
    re: Tensor, im: Tensor, positions: Tensor, canvas: int
) -> tuple[Tensor, Tensor]:
    """The original's reassembly: patches summed on a canvas, over summed centre masks + 0.001.

    The mean of all ``B*C`` positions of the batch is subtracted first, as the original does (a
    no-op for groups whose positions are centred). Real and imaginary parts are divided
    separately by ``sum(centre masks) + 0.001``, so pixels no centre mask covers are
    multiplied by 1000.

    Args:
        re, im: ``(B, C, N, N)`` real and imaginary parts of the object patches.
        positions: ``(B, C, 2)`` patch positions ``(x, y)`` in pixels.
        canvas: side of the square canvas (``ModelConfig.padded_size``).

    Returns:
        ``(re, im)``, each ``(B, canvas, canvas)``.
    """
    n = re.shape[-1]
    centred = positions - positions.reshape(-1, 2).mean(dim=0)
    px = _placement(centred[..., 0], canvas, n)  # (B, C, canvas, N)
    py = _placement(centred[..., 1], canvas, n)
    pxt = px.transpose(-1, -2)
    sum_re = (py @ re @ pxt).sum(dim=1)  # (B, canvas, canvas)
    sum_im = (py @ im @ pxt).sum(dim=1)
    mask = centre_mask(n).to(dtype=re.dtype, device=re.device)
    weight = (py @ mask @ pxt).sum(dim=1) + 0.001  # CENTRE_MASK_EPS (TorchScript: no globals)
    return sum_re / weight, sum_im / weight


def trim_canvas(re: Tensor, im: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The centre ``n x n`` of a ``(B, M, M)`` canvas: the original's ``trimmed_obj``."""
    a = (re.shape[-1] - n) // 2
    return re[..., a : a + n, a : a + n], im[..., a : a + n, a : a + n]


def extract_patches(re: Tensor, im: Tensor, positions: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Cut ``n x n`` patches out of a ``(B, M, M)`` canvas at ``positions`` (bilinear, zero fill).

    Returns:
        ``(re, im)`` patches, each ``(B, C, n, n)``.
    """
    canvas = re.shape[-1]
    ex = _cut(positions[..., 0], canvas, n)  # (B, C, n, M)
    ey = _cut(positions[..., 1], canvas, n)
    ext = ex.transpose(-1, -2)
    return ey @ re.unsqueeze(1) @ ext, ey @ im.unsqueeze(1) @ ext


def gaussian_kernel(sigma: float) -> Tensor:
    """The original's 3 x 3 smoothing kernel: outer product of ``softmax(-x^2 / (2 sigma^2))``
    over ``x = (-1, 0, 1)`` (a Gaussian normalised to sum 1)."""
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    k1 = torch.softmax(-(x * x) / (2.0 * sigma * sigma), dim=0)
    return torch.outer(k1, k1).to(torch.float32)


def gaussian_smooth(x: Tensor, kernel: Tensor) -> Tensor:
    """``(..., N, N)`` smoothed by the ``(3, 3)`` kernel with reflect padding (no edge repeat)."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-2], shape[-1])
    padded = torch.nn.functional.pad(flat, (1, 1, 1, 1), mode="reflect")
    out = torch.nn.functional.conv2d(padded, kernel.reshape(1, 1, 3, 3))
    return out.reshape(shape)


def pad_to_canvas(re: Tensor, im: Tensor, canvas: int) -> tuple[Tensor, Tensor]:
    """One patch per sample zero-padded onto the canvas: ``(B, 1, N, N)`` -> ``(B, M, M)``.

    The original's reassembly when ``object.big`` is off: no translation, no mask division.
    """
    a = (canvas - re.shape[-1]) // 2
    b = canvas - re.shape[-1] - a
    pad = [a, b, a, b]
    return (
        torch.nn.functional.pad(re[:, 0], pad),
        torch.nn.functional.pad(im[:, 0], pad),
    )


def illuminate(re: Tensor, im: Tensor, probe_re: Tensor, probe_im: Tensor) -> tuple[Tensor, Tensor]:
    """Exit wave ``probe * patch`` (complex product on real pairs)."""
    return re * probe_re - im * probe_im, re * probe_im + im * probe_re


def diffraction_amplitude(exit_re: Tensor, exit_im: Tensor) -> Tensor:
    """Far-field amplitude ``sqrt(fftshift(|fft2(exit wave)|^2 / (N * N)))``, float32.

    Args:
        exit_re, exit_im: ``(..., N, N)`` exit wave.
    """
    n = exit_re.shape[-1]
    field = torch.fft.fft2(torch.complex(exit_re, exit_im))
    intensity = (field.real * field.real + field.imag * field.imag) / float(n * n)
    shifted = torch.roll(intensity, shifts=(n // 2, n // 2), dims=(-2, -1))  # fftshift, even N
    return torch.sqrt(shifted)
