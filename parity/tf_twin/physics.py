"""Forward model of the twin in TensorFlow: the original PtychoPINN's physics, step by step.

Follows the ORIGINAL TensorFlow PtychoPINN (ARCHITECTURE.md section 7, the fixture READMEs in
``../shared/reference/ptychopinn-tf``), written independently of both the original and
``ptycho_torch.physics`` so that the twin stays a second implementation: the object
``amplitude * exp(i * phase)`` goes onto the canvas and its patches are cut back out
(:mod:`parity.tf_twin.canvas`), illuminated by the probe (smoothed and disk-masked as the
original's ProbeIllumination), then ``sqrt(fftshift(|fft2|^2 / (N*N)))``. Offsets are ours,
``(B, C, 2)`` ``(x, y)`` = scan position minus group centre in pixels, the negative of the
original's ``positions``. Complex fields travel as ``(re, im)`` pairs of float32 tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from parity.tf_twin.canvas import canvas_margin, extract, pad_to_canvas, reassemble, trim
from ptycho_torch.config import ModelConfig

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "STEP_NAMES",
    "diffraction_amplitude",
    "forward_steps",
    "gaussian_kernel",
    "illuminate",
    "probe_disk",
]

# What forward_steps records, in order (complex ones as complex64):
STEP_NAMES = (
    "obj",  # (B, out, N, N) complex: amplitude * exp(i phase)
    "padded_obj",  # (B, 1, M, M) complex: the reassembled canvas, M = padded_size
    "trimmed_obj",  # (B, 1, N, N) complex: its centre, the original's inference output
    "extracted_patches",  # (B, C, N, N) complex: patches cut back out of the canvas
    "illuminated",  # (B, C, N, N) complex: the exit waves
    "pred_amplitude_unscaled",  # (B, C, N, N) float32: far-field amplitude
)


def probe_disk(n: int) -> np.ndarray:
    """``(n, n)`` float32: 1 where the distance to ``(n/2 - 0.5, n/2 - 0.5)`` is below ``n // 4``."""
    axis = np.arange(n) + 0.5 - n // 2
    return (np.hypot(axis[:, None], axis[None, :]) < n // 4).astype(np.float32)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """``(3, 3)`` float32 Gaussian: the outer product of ``exp(-x^2 / (2 sigma^2))``, x = -1, 0, 1,
    each factor normalised to sum 1 (the original's 3x3 ``gaussian_filter2d``)."""
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2.0 * sigma * sigma))
    taps /= taps.sum()
    return np.outer(taps, taps).astype(np.float32)


def _smooth(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """3x3 Gaussian of the two innermost axes of ``(B, C, N, N)``, reflect-padded."""
    import tensorflow as tf

    shape = tf.shape(field)
    images = tf.reshape(field, (-1, field.shape[-2], field.shape[-1], 1))  # (B*C, N, N, 1)
    images = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    kernel = tf.constant(gaussian_kernel(sigma)[:, :, np.newaxis, np.newaxis])
    return tf.reshape(tf.nn.conv2d(images, kernel, strides=1, padding="VALID"), shape)


def illuminate(
    re: tf.Tensor,
    im: tf.Tensor,
    probe_re: tf.Tensor,
    probe_im: tf.Tensor,
    *,
    smoothing_sigma: float = 0.0,
    disk: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Exit waves: patches times the ``(N, N)`` probe, then (as the original's ProbeIllumination)
    the Gaussian smoothing of the product when ``smoothing_sigma > 0``, then the disk mask."""
    import tensorflow as tf

    exit_re = re * probe_re - im * probe_im
    exit_im = re * probe_im + im * probe_re
    if smoothing_sigma > 0:
        exit_re, exit_im = _smooth(exit_re, smoothing_sigma), _smooth(exit_im, smoothing_sigma)
    if disk:
        mask = tf.constant(probe_disk(re.shape[-1]))
        exit_re, exit_im = exit_re * mask, exit_im * mask
    return exit_re, exit_im


def diffraction_amplitude(re: tf.Tensor, im: tf.Tensor) -> tf.Tensor:
    """``sqrt(fftshift(|fft2d(exit wave)|^2 / (N * N)))`` of ``(..., N, N)`` exit waves."""
    import tensorflow as tf

    n = re.shape[-1]
    field = tf.signal.fft2d(tf.complex(re, im))
    real, imag = tf.math.real(field), tf.math.imag(field)
    intensity = (real * real + imag * imag) / float(n * n)
    return tf.sqrt(tf.signal.fftshift(intensity, axes=(-2, -1)))


def forward_steps(
    amplitude: tf.Tensor,
    phase: tf.Tensor,
    positions: tf.Tensor,
    probe_re: tf.Tensor,
    probe_im: tf.Tensor,
    config: ModelConfig,
) -> dict[str, Any]:
    """``(B, N, N, out)`` decoder outputs (NHWC; ``out`` is C or 1), ``(B, C, 2)`` offsets and
    the ``(N, N)`` probe as the model holds it -> every step of the physics forward, named as in
    :data:`STEP_NAMES`, patch-major (``(B, C, N, N)``; canvases ``(B, 1, M, M)``)."""
    import tensorflow as tf

    n, canvas = config.N, config.N + 2 * canvas_margin(config)
    amplitude = tf.transpose(amplitude, (0, 3, 1, 2))  # (B, out, N, N)
    phase = tf.transpose(phase, (0, 3, 1, 2))
    re, im = amplitude * tf.cos(phase), amplitude * tf.sin(phase)
    if config.object_big:
        canvas_re, canvas_im = reassemble(re, im, positions, canvas)
    else:
        canvas_re, canvas_im = pad_to_canvas(re, im, canvas)
    patch_re, patch_im = extract(canvas_re, canvas_im, positions, n)
    exit_re, exit_im = illuminate(
        patch_re,
        patch_im,
        probe_re,
        probe_im,
        smoothing_sigma=config.gaussian_smoothing_sigma,
        disk=config.probe_mask,
    )
    padded = tf.complex(canvas_re, canvas_im)[:, tf.newaxis]
    return {
        "obj": tf.complex(re, im),
        "padded_obj": padded,
        "trimmed_obj": trim(padded, n),
        "extracted_patches": tf.complex(patch_re, patch_im),
        "illuminated": tf.complex(exit_re, exit_im),
        "pred_amplitude_unscaled": diffraction_amplitude(exit_re, exit_im),
    }
