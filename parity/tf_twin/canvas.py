"""Where the twin's patches go: the original PtychoPINN's canvas, in TensorFlow.

A translation by ``s`` moves image content by ``+s`` (bilinear, zero fill; what leaves the canvas
is lost), so reassembly translates a patch by ``+offset`` and extraction by ``-offset``.
Translations are separable, so each one is a pair of ``(rows, columns)`` matrices
(:func:`warp_matrix`) with the zero-padding or cropping folded in. Complex fields travel as
``(re, im)`` pairs of float32 tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from parity.tf_twin.errors import TwinError
from ptycho_torch.config import ModelConfig

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CENTRE_MASK_FLOOR",
    "canvas_margin",
    "centre_mask",
    "extract",
    "pad_to_canvas",
    "reassemble",
    "trim",
    "warp_matrix",
]

CENTRE_MASK_FLOOR = 0.001  # the original divides by (reassembled centre masks + 0.001)


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


def warp_matrix(
    n_out: int, n_in: int, out_first: int, in_first: int, shift: tf.Tensor
) -> tf.Tensor:
    """A bilinear translation with zero fill along one axis, as ``S + (n_out, n_in)`` float32
    matrices ``W[..., v, j]`` for float32 ``shift`` of any shape ``S``.

    Output sample ``v`` sits at grid coordinate ``out_first + v`` and reads the input at the
    float32 coordinate ``(out_first + v) - shift``; input sample ``j`` sits at ``in_first + j``
    (inputs outside ``[0, n_in)`` read as zero). The weights are computed from the rounded source
    coordinate, as an image warp computes them, not from the distance ``|u - j - shift|``: on a
    canvas of ~80 pixels the two differ by a few 1e-6, which the centre-mask normalisation (a
    division by as little as 0.001) magnifies.
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
    """The original's object_big reassembly of ``(B, C, N, N)`` patches at ``(B, C, 2)`` offsets
    onto ``(B, canvas, canvas)`` fields.

    Each patch moves by its offset minus the mean of ALL ``B * C`` offsets; the sums of the real
    and imaginary parts are divided by the sum of the centre masks moved alike, plus 0.001 (so
    pixels outside every centre square are multiplied by 1000).
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
