"""A scan NPZ read a batch at a time, torch-free: the checks and casts of
:func:`ptycho_torch.scan.load_npz` in bounded memory, for the inference host."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ptycho_torch.errors import DataError
from ptycho_torch.prepare import pattern_counts
from ptycho_torch.scan import check_diffraction, check_layout, existing_scan, to_float64_coords
from ptycho_torch.scan_layouts import ScanRows

__all__ = ["ScanReader"]

logger = logging.getLogger("ptycho_torch.scan")


class ScanReader:
    """A scan NPZ read a batch at a time: the checks and casts of :func:`load_npz`, in bounded
    memory (the torch-free inference host reconstructs scans of any length with it).

    Opening checks every key's shape and dtype from the NPZ headers and reads the small arrays
    (coordinates); ``diffraction`` is read only by :meth:`rows` and :meth:`take`, which cast it
    to float32 and refuse NaN, Inf and negative values naming the pattern. ``objectGuess`` and
    ``Y`` are never read (only ``objectGuess``'s shape, the object's frame). Use as a context
    manager.

    Attributes:
        n, N: number of patterns and their side.
        xcoords, ycoords: ``(n,)`` float64 patch centres.
        object_shape: shape of ``objectGuess``, or None without one.
        casts: the dtype conversions :meth:`rows` applies (logged once, at opening).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = existing_scan(path)
        self._rows = ScanRows(self.path)  # contract names, whatever the layout (scan_layouts)
        try:
            self._open()
        except BaseException:
            self._rows.close()
            raise

    def _open(self) -> None:
        layout = {k: (m.shape, m.dtype) for k, m in self._rows.members.items()}
        self.n, self.N = check_layout(self.path, layout)
        self.casts: list[str] = []
        if layout["diffraction"][1] != np.float32:
            self.casts.append(f"diffraction {layout['diffraction'][1]}->float32")
        self.xcoords, self.ycoords = (
            to_float64_coords(self.path, k, self._rows.array(k)) for k in ("xcoords", "ycoords")
        )
        self.object_shape: tuple[int, int] | None = None
        if "objectGuess" in layout:
            rows, cols = layout["objectGuess"][0]
            self.object_shape = (rows, cols)
        if self.casts:
            logger.warning(
                "%s: cast at load to the float32 contract: %s",
                self.path.name,
                ", ".join(self.casts),
            )

    def __enter__(self) -> ScanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._rows.close()

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Patterns ``start:stop`` as float32 ``(b, N, N)``, checked."""
        return check_diffraction(self.path, self._rows.rows("diffraction", start, stop), [], start)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Patterns ``indices`` (any shape) as float32 ``(*indices.shape, N, N)``, checked."""
        flat = np.asarray(indices).reshape(-1)
        values = self._rows.take("diffraction", flat)
        try:
            values = check_diffraction(self.path, values, [])
        except DataError:  # name the scan's pattern, not the position in this batch
            bad = ~np.isfinite(values) | (values < 0)
            first = int(flat[np.argwhere(bad.reshape(len(flat), -1).any(axis=1))[0][0]])
            check_diffraction(
                self.path, self._rows.rows("diffraction", first, first + 1), [], first
            )
            raise
        return values.reshape((*np.shape(indices), self.N, self.N))

    def pattern_counts(self, chunk: int = 256) -> np.ndarray:
        """:func:`pattern_counts` of every pattern, reading ``chunk`` patterns at a time; checks
        every pattern on the way (so a bad value stops the run before the model runs)."""
        counts = np.empty(self.n, dtype=np.float64)
        for start in range(0, self.n, chunk):
            counts[start : start + chunk] = pattern_counts(self.rows(start, start + chunk))
        return counts
