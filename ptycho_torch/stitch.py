"""Stitch object patches back into the extended object at their scan positions.

Only the central ``N/2 x N/2`` square of each patch is used: that is the part the network's
centre path predicts and the probe illuminates; the border is weakly constrained. Each patch is
splatted bilinearly at its sub-pixel centre (the transpose of the bilinear extraction used by
:mod:`ptycho_torch.simulate`), and overlaps are averaged. NumPy only: the torch-free inference
host (:mod:`export.predict`) stitches with the same code, batch by batch
(:class:`StitchAccumulator`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "StitchAccumulator",
    "StitchedObject",
    "central_window",
    "object_shape",
    "stitch_patches",
]


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


def object_shape(xcoords: np.ndarray, ycoords: np.ndarray, n: int) -> tuple[int, int]:
    """The default object shape: just large enough for every ``n x n`` patch."""
    side = int(math.ceil(max(xcoords.max(), ycoords.max()) + n / 2)) + 2
    return (side, side)


class StitchAccumulator:
    """:func:`stitch_patches` fed batch by batch: memory is the object canvas, not the patches.

    Patch values and patch weights accumulate separately: :meth:`add_weights` once per scan
    point, :meth:`add_patches` for every predicted patch (with ``scale`` ``1/k`` when a point
    is predicted ``k`` times, so that the sum is the average patch's). Points added in the same
    order as :func:`stitch_patches` visits them give bit-identical sums.

    Args:
        shape: object shape ``(H, W)``.
        n: patch side N.
        fraction: side of the central square used, as a fraction of N.
    """

    def __init__(self, shape: tuple[int, int], n: int, fraction: float = 0.5) -> None:
        self.shape, self.n = shape, n
        self.window = central_window(n, fraction)  # (N, N)
        self.acc = np.zeros((shape[0] + n + 2, shape[1] + n + 2), np.complex128)  # room at edges
        self.weight = np.zeros(self.acc.shape, dtype=np.float64)

    def _corners(self, x: float, y: float) -> list[tuple[int, int, float]]:
        """``(row, col, bilinear weight)`` of the four placements; none off the top/left edge."""
        x0, y0 = x - self.n / 2, y - self.n / 2
        ix, iy = int(math.floor(x0)), int(math.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        if ix < 0 or iy < 0:
            return []  # a patch hanging off the top/left edge: its centre region is skipped
        return [
            (iy + dy, ix + dx, wy * wx)
            for dy, wy in ((0, 1 - fy), (1, fy))
            for dx, wx in ((0, 1 - fx), (1, fx))
        ]

    def add_patches(
        self,
        patches: np.ndarray,
        xcoords: np.ndarray,
        ycoords: np.ndarray,
        scale: np.ndarray | None = None,
    ) -> None:
        """Splat complex ``(b, N, N)`` patches centred on ``(x, y)``, each times ``scale[i]``."""
        n = self.n
        for i in range(patches.shape[0]):
            value = patches[i] * self.window
            if scale is not None and scale[i] != 1:
                value = value * scale[i]
            for row, col, w in self._corners(float(xcoords[i]), float(ycoords[i])):
                self.acc[row : row + n, col : col + n] += w * value

    def add_weights(self, xcoords: np.ndarray, ycoords: np.ndarray) -> None:
        """Count each scan point's window once, wherever its patches came from."""
        n = self.n
        for x, y in zip(xcoords, ycoords):
            for row, col, w in self._corners(float(x), float(y)):
                self.weight[row : row + n, col : col + n] += w * self.window

    def result(self) -> StitchedObject:
        """The averaged object (zero where nothing was scanned) and the weights."""
        h, w = self.shape
        acc, weight = self.acc[:h, :w], self.weight[:h, :w]
        covered = weight > 1e-6
        obj = np.where(covered, acc / np.where(covered, weight, 1.0), 0.0)
        return StitchedObject(obj.astype(np.complex64), weight.astype(np.float32))


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
        shape: object shape; default just large enough for every patch (:func:`object_shape`).
        fraction: side of the central square used, as a fraction of N.
    """
    n = patches.shape[-1]
    stitcher = StitchAccumulator(shape or object_shape(xcoords, ycoords, n), n, fraction)
    stitcher.add_patches(patches, xcoords, ycoords)
    stitcher.add_weights(xcoords, ycoords)
    return stitcher.result()
