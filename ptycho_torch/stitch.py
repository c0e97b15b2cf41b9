"""Stitch object patches back into the extended object at their scan positions.

Only the central ``N/2 x N/2`` square of each patch is used: that is the part the network's
centre path predicts and the probe illuminates; the border is weakly constrained. Each patch is
splatted bilinearly at its sub-pixel centre (the transpose of the bilinear extraction used by
:mod:`ptycho_torch.simulate`), and overlaps are averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["StitchedObject", "central_window", "stitch_patches"]


@dataclass(frozen=True)
class StitchedObject:
    """Averaged object and how much patch weight each pixel received (0 = not scanned)."""

    obj: np.ndarray  # (M, M) complex64
    weight: np.ndarray  # (M, M) float32


def central_window(n: int, fraction: float = 0.5) -> np.ndarray:
    """``(n, n)`` float mask: ones on the central ``fraction * n`` square, zero elsewhere."""
    window = np.zeros((n, n), dtype=np.float64)
    half = int(round(n * fraction / 2))
    window[n // 2 - half : n // 2 + half, n // 2 - half : n // 2 + half] = 1.0
    return window


def stitch_patches(
    patches: np.ndarray,
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    shape: tuple[int, int] | None = None,
    fraction: float = 0.5,
) -> StitchedObject:
    """Average complex ``(n, N, N)`` patches centred on ``(x, y)`` into an object.

    Convention: ``patch[r, c]`` sits at object pixel ``(y - N/2 + r, x - N/2 + c)``.

    Args:
        patches: complex ``(n, N, N)`` patches.
        xcoords, ycoords: ``(n,)`` patch centres in object pixels.
        shape: object shape; default just large enough for every patch.
        fraction: side of the central square used, as a fraction of N.
    """
    n_patches, n = patches.shape[0], patches.shape[-1]
    if shape is None:
        side = int(math.ceil(max(xcoords.max(), ycoords.max()) + n / 2)) + 2
        shape = (side, side)
    acc = np.zeros((shape[0] + n + 2, shape[1] + n + 2), dtype=np.complex128)  # room at edges
    weight = np.zeros(acc.shape, dtype=np.float64)
    window = central_window(n, fraction)
    for i in range(n_patches):
        x0, y0 = xcoords[i] - n / 2, ycoords[i] - n / 2
        ix, iy = int(math.floor(x0)), int(math.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        if ix < 0 or iy < 0:
            continue  # a patch hanging off the top/left edge: its centre region is skipped
        value = patches[i] * window
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                w = wy * wx
                acc[iy + dy : iy + dy + n, ix + dx : ix + dx + n] += w * value
                weight[iy + dy : iy + dy + n, ix + dx : ix + dx + n] += w * window
    acc, weight = acc[: shape[0], : shape[1]], weight[: shape[0], : shape[1]]
    covered = weight > 1e-6
    obj = np.where(covered, acc / np.where(covered, weight, 1.0), 0.0)
    return StitchedObject(obj.astype(np.complex64), weight.astype(np.float32))
