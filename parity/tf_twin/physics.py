"""Forward model of the twin in TensorFlow: overlap constraint and far-field diffraction.

Same mathematics as ``ptycho_torch.physics`` (ARCHITECTURE.md, "Physics forward"), written
independently with TensorFlow ops. Patches arrive NHWC ``(B, N, N, C)``; the translations act
on each patch's rows and columns and ``tf.signal.fft2d`` transforms the two innermost axes, so
the functions here work patch-major ``(B, C, N, N)`` and :func:`predicted_amplitude` transposes
at its edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "cut_out",
    "far_field_amplitude",
    "overlap_average",
    "place_on_canvas",
    "predicted_amplitude",
    "translation_matrix",
]


def translation_matrix(n_out: int, n_in: int, shift: tf.Tensor) -> tf.Tensor:
    """Bilinear translation with zero fill along one axis, as a matrix (hat kernel).

    ``M[u, j] = max(0, 1 - |u - j - (n_out - n_in)/2 - shift|)``: applied to a length ``n_in``
    signal it centres it on a length ``n_out`` axis, moved by ``shift`` pixels, with linear
    interpolation for non-integer shifts.

    Args:
        n_out: length of the output axis.
        n_in: length of the input axis.
        shift: shifts in pixels, float32, any shape ``S``.

    Returns:
        ``S + (n_out, n_in)`` float32 matrices.
    """
    import tensorflow as tf

    u = tf.reshape(tf.range(n_out, dtype=shift.dtype), (n_out, 1))
    j = tf.reshape(tf.range(n_in, dtype=shift.dtype), (1, n_in))
    centre = (n_out - n_in) / 2.0
    distance = u - j - centre - shift[..., tf.newaxis, tf.newaxis]  # S + (n_out, n_in)
    return tf.maximum(1.0 - tf.abs(distance), 0.0)


def place_on_canvas(
    re: tf.Tensor, im: tf.Tensor, positions: tf.Tensor, canvas: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Sum the C patches of each sample onto one canvas at their offsets.

    Args:
        re, im: ``(B, C, N, N)`` patches.
        positions: ``(B, C, 2)`` offsets ``(x, y)`` in pixels.
        canvas: canvas side in pixels.

    Returns:
        ``(sum_re, sum_im, coverage)``, each ``(B, canvas, canvas)``.
    """
    import tensorflow as tf

    n = re.shape[-1]
    tx = translation_matrix(canvas, n, positions[..., 0])  # (B, C, canvas, N)
    ty = translation_matrix(canvas, n, positions[..., 1])

    def place(patches: tf.Tensor) -> tf.Tensor:
        rows = tf.linalg.matmul(ty, patches)  # (B, C, canvas, N)
        return tf.reduce_sum(tf.linalg.matmul(rows, tx, transpose_b=True), axis=1)

    return place(re), place(im), place(tf.ones_like(re))


def cut_out(
    re: tf.Tensor, im: tf.Tensor, positions: tf.Tensor, n: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cut ``n x n`` patches out of ``(B, M, M)`` canvases at ``(B, C, 2)`` offsets."""
    import tensorflow as tf

    canvas = re.shape[-1]
    tx = translation_matrix(canvas, n, positions[..., 0])  # (B, C, M, n)
    ty = translation_matrix(canvas, n, positions[..., 1])

    def cut(field: tf.Tensor) -> tf.Tensor:
        rows = tf.linalg.matmul(ty, field[:, tf.newaxis], transpose_a=True)  # (B, C, n, M)
        return tf.linalg.matmul(rows, tx)  # (B, C, n, n)

    return cut(re), cut(im)


def overlap_average(
    re: tf.Tensor, im: tf.Tensor, positions: tf.Tensor, canvas: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Real-space overlap constraint: average the patches on a canvas, cut each one back out."""
    import tensorflow as tf

    sum_re, sum_im, coverage = place_on_canvas(re, im, positions, canvas)
    covered = coverage > 1e-3
    safe = tf.where(covered, coverage, tf.ones_like(coverage))
    avg_re = tf.where(covered, sum_re / safe, tf.zeros_like(sum_re))
    avg_im = tf.where(covered, sum_im / safe, tf.zeros_like(sum_im))
    return cut_out(avg_re, avg_im, positions, re.shape[-1])


def far_field_amplitude(
    re: tf.Tensor, im: tf.Tensor, probe_re: tf.Tensor, probe_im: tf.Tensor
) -> tf.Tensor:
    """``sqrt(fftshift(|fft2d(probe * patch)|^2 / (N * N)))`` of ``(B, C, N, N)`` patches."""
    import tensorflow as tf

    n = re.shape[-1]
    exit_re = re * probe_re - im * probe_im
    exit_im = re * probe_im + im * probe_re
    field = tf.signal.fft2d(tf.complex(exit_re, exit_im))
    real, imag = tf.math.real(field), tf.math.imag(field)
    intensity = (real * real + imag * imag) / float(n * n)
    return tf.sqrt(tf.signal.fftshift(intensity, axes=(-2, -1)))


def predicted_amplitude(
    amplitude: tf.Tensor,
    phase: tf.Tensor,
    positions: tf.Tensor,
    probe_re: tf.Tensor,
    probe_im: tf.Tensor,
    patches: int,
) -> tf.Tensor:
    """Object patches NHWC -> predicted diffraction amplitude NHWC ``(B, N, N, C)``.

    Args:
        amplitude, phase: ``(B, N, N, out)`` decoder outputs; ``out`` is C or 1 (shared patch).
        positions: ``(B, C, 2)`` offsets ``(x, y)`` in pixels.
        probe_re, probe_im: ``(N, N)`` probe, already divided by the probe scale.
        patches: C, the patches per sample.
    """
    import tensorflow as tf

    amplitude = tf.transpose(amplitude, (0, 3, 1, 2))  # (B, out, N, N)
    phase = tf.transpose(phase, (0, 3, 1, 2))
    re = amplitude * tf.cos(phase)
    im = amplitude * tf.sin(phase)
    if re.shape[1] != patches:  # one shared patch for every position
        re = tf.repeat(re, patches, axis=1)
        im = tf.repeat(im, patches, axis=1)
    if patches > 1:
        n = re.shape[-1]
        re, im = overlap_average(re, im, positions, canvas=2 * n)  # room for offsets up to N/2
    pred = far_field_amplitude(re, im, probe_re, probe_im)  # (B, C, N, N)
    return tf.transpose(pred, (0, 2, 3, 1))
