"""Forward model of the twin in TensorFlow: the original PtychoPINN's physics, step by step.

Follows the behaviour of the ORIGINAL TensorFlow PtychoPINN (ARCHITECTURE.md section 7, the
fixture READMEs in ``../shared/reference/ptychopinn-tf``), written independently of both the
original and ``ptycho_torch.physics`` so that the twin stays a second implementation:

1. ``obj = amplitude * exp(i * phase)``, ``(B, out, N, N)`` with ``out`` = C (object_big) or 1;
2. object_big: the C patches are zero-padded to the ``padded_size`` canvas, translated to their
   offsets (minus the mean offset of the whole batch), summed, and divided (real and imaginary
   parts alike) by the same reassembly of a centre mask plus 0.001; otherwise the single patch is
   only zero-padded onto the canvas;
3. ``trimmed_obj``: the centre ``N x N`` of the canvas (the original's inference output);
4. extraction: the canvas moved back by each patch's offset, centre ``N x N`` kept;
5. illumination: times the probe; with ``gaussian_smoothing_sigma > 0`` the illuminated patches
   are smoothed (3x3 Gaussian, reflect padding) and with ``probe_mask`` multiplied by the disk;
6. ``sqrt(fftshift(|fft2|^2 / (N*N)))``.

Offsets are ours, ``(B, C, 2)`` ``(x, y)`` = scan position minus group centre in pixels, the
negative of the original's ``positions`` input. A translation by ``s`` moves image content by
``+s`` (bilinear, zero fill; what leaves the canvas is lost), so reassembly translates a patch by
``+offset`` and extraction by ``-offset``. Translations are separable, so each one is a pair of
``(rows, columns)`` matrices (:func:`warp_matrix`) with the zero-padding or cropping folded in.

Complex fields travel as ``(re, im)`` pairs of float32 tensors and are paired up with
``tf.complex`` only for :func:`forward_steps`' record and for the FFT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from parity.tf_twin.errors import TwinError
from ptycho_torch.config import ModelConfig

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CENTRE_MASK_FLOOR",
    "STEP_NAMES",
    "canvas_margin",
    "centre_mask",
    "diffraction_amplitude",
    "extract",
    "forward_steps",
    "gaussian_kernel",
    "illuminate",
    "probe_disk",
    "reassemble",
    "trim",
    "warp_matrix",
]

CENTRE_MASK_FLOOR = 0.001  # the original divides by (reassembled centre masks + 0.001)

# What forward_steps records, in order (complex ones as complex64):
STEP_NAMES = (
    "obj",  # (B, out, N, N) complex: amplitude * exp(i phase)
    "padded_obj",  # (B, 1, M, M) complex: the reassembled canvas, M = padded_size
    "trimmed_obj",  # (B, 1, N, N) complex: its centre, the original's inference output
    "extracted_patches",  # (B, C, N, N) complex: patches cut back out of the canvas
    "illuminated",  # (B, C, N, N) complex: the exit waves
    "pred_amplitude_unscaled",  # (B, C, N, N) float32: far-field amplitude
)


def canvas_margin(config: ModelConfig) -> int:
    """Zero margin on each side of an ``N x N`` patch on the ``padded_size`` canvas.

    Raises:
        TwinError: ``padded_size - N`` is odd or zero; the original cannot run either (its
            canvas reshape fails, or its ``x[m:-m]`` crop is empty).
    """
    extra = config.padded_size - config.N
    if extra <= 0 or extra % 2:
        raise TwinError(
            f"padded_size - N = {extra} (N={config.N}, gridsize={config.gridsize}, "
            f"offset={config.offset}, max_position_jitter={config.max_position_jitter}) must be "
            "even and > 0: the original pads each patch by (padded_size - N) // 2 per side and "
            "crops with x[m:-m]; choose offset/max_position_jitter accordingly"
        )
    return extra // 2


def centre_mask(n: int) -> np.ndarray:
    """``(n, n)`` float32: ones on the central ``n/2 x n/2`` square, zeros elsewhere."""
    mask = np.zeros((n, n), np.float32)
    mask[n // 4 : n - n // 4, n // 4 : n - n // 4] = 1.0
    return mask


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


def warp_matrix(
    n_out: int, n_in: int, out_first: int, in_first: int, shift: tf.Tensor
) -> tf.Tensor:
    """A bilinear translation with zero fill along one axis, as a matrix ``W[..., v, j]``.

    Output sample ``v`` sits at grid coordinate ``out_first + v`` and reads the input at the
    float32 coordinate ``(out_first + v) - shift`` (so content moves by ``+shift``); input sample
    ``j`` sits at ``in_first + j``. The weight is ``1 - f`` on the sample at ``floor(source)`` and
    ``f = source - floor(source)`` on the next one; inputs outside ``[0, n_in)`` read as zero.
    The weights are computed from the rounded source coordinate, as an image warp computes them,
    not from the distance ``|u - j - shift|``: on a canvas of ~80 pixels the two differ by a few
    1e-6, which the centre-mask normalisation (a division by as little as 0.001) magnifies.

    Args:
        n_out, n_in: lengths of the output and input axes.
        out_first, in_first: grid coordinates of output and input sample 0.
        shift: shifts in pixels, float32, any shape ``S``.

    Returns:
        ``S + (n_out, n_in)`` float32 matrices.
    """
    import tensorflow as tf

    out_coord = tf.range(out_first, out_first + n_out, dtype=shift.dtype)
    source = out_coord - shift[..., tf.newaxis]  # S + (n_out,)
    low = tf.floor(source)
    frac = (source - low)[..., tf.newaxis]
    offset = tf.range(in_first, in_first + n_in, dtype=shift.dtype) - low[..., tf.newaxis]
    return tf.where(offset == 0.0, 1.0 - frac, 0.0) + tf.where(offset == 1.0, frac, 0.0)


def _axis_matrices(
    shifts: tf.Tensor, n_out: int, n_in: int, out_first: int, in_first: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Column (x) and row (y) warp matrices ``(B, C, n_out, n_in)`` for ``(B, C, 2)`` shifts."""
    return (
        warp_matrix(n_out, n_in, out_first, in_first, shifts[..., 0]),
        warp_matrix(n_out, n_in, out_first, in_first, shifts[..., 1]),
    )


def _place(patches: tf.Tensor, columns: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``(B, C, n, n)`` patches -> ``(B, canvas, canvas)``: padded, moved, summed over C."""
    import tensorflow as tf

    moved = tf.linalg.matmul(tf.linalg.matmul(rows, patches), columns, transpose_b=True)
    return tf.reduce_sum(moved, axis=1)


def reassemble(
    re: tf.Tensor, im: tf.Tensor, positions: tf.Tensor, canvas: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The original's object_big reassembly onto a ``canvas x canvas`` field.

    Each patch moves by its offset minus the mean of ALL ``B * C`` offsets; the sums of the real
    and imaginary parts are divided by the sum of the centre masks moved alike, plus 0.001 (so
    pixels outside every centre square are multiplied by 1000).

    Args:
        re, im: ``(B, C, N, N)`` patches.
        positions: ``(B, C, 2)`` offsets ``(x, y)`` in pixels.
        canvas: side of the canvas (``padded_size``).

    Returns:
        ``(re, im)``, each ``(B, canvas, canvas)``.
    """
    import tensorflow as tf

    n = re.shape[-1]
    mean = tf.reduce_mean(tf.reshape(positions, (-1, 2)), axis=0)
    margin = (canvas - n) // 2  # patch pixel j sits at canvas pixel margin + j
    columns, rows = _axis_matrices(positions - mean, canvas, n, 0, margin)
    masks = tf.broadcast_to(tf.constant(centre_mask(n)), tf.shape(re))
    norm = _place(masks, columns, rows) + CENTRE_MASK_FLOOR
    return _place(re, columns, rows) / norm, _place(im, columns, rows) / norm


def pad_to_canvas(re: tf.Tensor, im: tf.Tensor, canvas: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Without object_big: the one ``(B, 1, N, N)`` patch zero-padded to ``(B, canvas, canvas)``
    (no translation, no normalisation)."""
    import tensorflow as tf

    margin = (canvas - re.shape[-1]) // 2
    pad = [[0, 0], [margin, margin], [margin, margin]]
    return tf.pad(re[:, 0], pad), tf.pad(im[:, 0], pad)


def trim(field: tf.Tensor, n: int) -> tf.Tensor:
    """Centre ``n x n`` of ``(..., M, M)`` fields."""
    margin = (field.shape[-1] - n) // 2
    return field[..., margin : margin + n, margin : margin + n]


def extract(
    re: tf.Tensor, im: tf.Tensor, positions: tf.Tensor, n: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cut ``(B, C, n, n)`` patches out of ``(B, M, M)`` canvases: each canvas moved by minus the
    patch's offset (zero fill), centre ``n x n`` kept."""
    import tensorflow as tf

    canvas = re.shape[-1]
    margin = (canvas - n) // 2  # output pixel v sits at canvas pixel margin + v
    columns, rows = _axis_matrices(-positions, n, canvas, margin, 0)

    def cut(field: tf.Tensor) -> tf.Tensor:
        picked = tf.linalg.matmul(rows, field[:, tf.newaxis])  # (B, C, n, M)
        return tf.linalg.matmul(picked, columns, transpose_b=True)

    return cut(re), cut(im)


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
    """Decoder outputs -> every step of the physics forward, named as in :data:`STEP_NAMES`.

    Args:
        amplitude, phase: ``(B, N, N, out)`` decoder outputs (NHWC); ``out`` is C or 1.
        positions: ``(B, C, 2)`` offsets ``(x, y)`` in pixels (ours, see the module docstring).
        probe_re, probe_im: ``(N, N)`` probe as the model holds it (already normalised).
        config: the model's configuration.

    Returns:
        ``{name: tensor}`` patch-major (``(B, C, N, N)``; canvases ``(B, 1, M, M)``).
    """
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
