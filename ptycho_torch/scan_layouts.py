"""The scan files users already have, torch-free: the data contract, the original TensorFlow
PtychoPINN's ``diff3d`` files and Ptychodus's PtychoPINN training files, read under one view.

Every scan enters :mod:`ptycho_torch.scan` through :func:`read_scan_arrays` (whole) or
:class:`ScanRows` (row by row); both present a file in the data contract's names, so the
checks, casts and everything downstream are the contract's. Which layout a file has is decided
by its keys alone (:func:`scan_layout`):

- **data contract** (``diffraction``): read as it is.
- **original PtychoPINN** (``diff3d``, no ``bad_pixels``; ``RawData.to_file`` of
  ``hoidn/PtychoPINN``'s ``ptycho/raw_data.py``): ``diff3d`` is the contract's ``diffraction``
  under its former name, *amplitudes* (``raw_data.normalize_data``: "Images are amplitude, not
  intensity"); ``xcoords_start``/``ycoords_start`` (deprecated copies of ``xcoords``) are ignored.
- **Ptychodus** (``diff3d`` with ``bad_pixels``; ``ptychodus.api.io.save_ptychopinn_training_data``,
  which always writes ``bad_pixels``): ``diff3d`` holds the patterns *as measured*, detector
  intensities (counts) in their source dtype, with the bad pixels already repaired by biharmonic
  inpainting (Ptychodus's ``inpaint_bad_pixels``); ``bad_pixels`` only records which pixels were
  filled. Amplitudes are ``sqrt(diff3d)`` in float32. ``probeGuess`` is the ``(modes, H, W)``
  stack of incoherent modes at OPR index 0; PtychoPINN models one coherent probe and mode 0 is
  used. ``scan_index`` is all zeros (one object). ``xcoords``/``ycoords`` are object pixels
  (``ObjectGeometry.map_probe_positions_to_object_x_px``), the contract's convention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.errors import DataError
from ptycho_torch.npz import NpzMember, NpzRowReader, read_npz

__all__ = [
    "CONTRACT",
    "ORIGINAL",
    "PTYCHODUS",
    "ScanLayout",
    "ScanRows",
    "read_scan_arrays",
    "scan_layout",
]

logger = logging.getLogger(__name__)

CONTRACT_KEYS = ("diffraction", "probeGuess", "xcoords", "ycoords")
CONTRACT_OPTIONAL = ("objectGuess", "Y", "scan_index")
TRAINING_KEYS = ("diff3d", "probeGuess", "xcoords", "ycoords")
TRAINING_OPTIONAL = ("objectGuess", "scan_index", "bad_pixels", "xcoords_start", "ycoords_start")
_DROPPED = ("diff3d", "bad_pixels", "xcoords_start", "ycoords_start")  # consumed or ignored


@dataclass(frozen=True)
class ScanLayout:
    """How a scan file stores its patterns."""

    name: str  # for messages
    diffraction_key: str  # the file's key for the patterns
    intensities: bool  # patterns are measured intensities: amplitude = sqrt(value)


CONTRACT = ScanLayout("data contract", "diffraction", intensities=False)
ORIGINAL = ScanLayout("original PtychoPINN training file (diff3d amplitudes)", "diff3d", False)
PTYCHODUS = ScanLayout("Ptychodus PtychoPINN training file (diff3d intensities)", "diff3d", True)


def scan_layout(path: Path, keys: Any) -> ScanLayout:
    """The layout of a file holding arrays ``keys``.

    Raises:
        DataError: neither layout (naming the keys found and the keys each layout needs), or a
            ``diff3d`` file that lacks one of the training layout's keys.
    """
    found = sorted(keys)
    if "diffraction" in found:
        return CONTRACT  # its missing keys are check_layout's to name
    if "diff3d" in found:
        missing = [k for k in TRAINING_KEYS if k not in found]
        if missing:
            raise DataError(
                f"{path}: a PtychoPINN/Ptychodus training file (diff3d) needs "
                f"{list(TRAINING_KEYS)}; missing {missing}, found {found}"
            )
        return PTYCHODUS if "bad_pixels" in found else ORIGINAL
    hint = ""
    if "patterns" in found:
        hint = (
            "; this looks like a Ptychodus diffraction file (patterns, no positions): give it "
            "as --data with --product PRODUCT.h5 to `python -m export predict`"
        )
    raise DataError(
        f"{path} is not a scan file: it holds {found}; a data-contract scan needs "
        f"{list(CONTRACT_KEYS)} (optional {list(CONTRACT_OPTIONAL)}), a PtychoPINN/Ptychodus "
        f"training file needs {list(TRAINING_KEYS)} (optional {list(TRAINING_OPTIONAL)}){hint}"
    )


def _check_patterns_dtype(path: Path, layout: ScanLayout, dtype: np.dtype) -> None:
    if layout.intensities and not (
        np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    ):
        raise DataError(
            f"{path}: key 'diff3d' must hold real intensities (integer or float counts), "
            f"found {dtype}"
        )


def _amplitude(values: np.ndarray) -> np.ndarray:
    """float32 ``sqrt`` of intensities; a negative value stays negative (``-sqrt(-v)``) so that
    the contract's check refuses it naming the pattern, instead of turning it into NaN."""
    x = values.astype(np.float32, copy=False)
    return (np.sign(x) * np.sqrt(np.abs(x))).astype(np.float32, copy=False)


def _probe_mode(path: Path, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The probe's ``(H, W)`` when the file holds a ``(modes, H, W)`` stack (mode 0 is used)."""
    if len(shape) != 3:
        return shape
    if shape[0] > 1:
        logger.warning(
            "%s: probeGuess holds %d probe modes %s; mode 0 is used (PtychoPINN models one "
            "coherent probe)",
            path.name,
            shape[0],
            tuple(shape),
        )
    return tuple(shape[1:])


def _note(path: Path, layout: ScanLayout, members: dict[str, Any]) -> None:
    if layout is CONTRACT:
        return
    if layout.intensities:
        filled = ""
        if "bad_pixels" in members:
            filled = (
                f", {int(np.count_nonzero(members['bad_pixels']))} bad pixel(s) already inpainted"
            )
        logger.info(
            "%s: %s: amplitudes = sqrt(diff3d) as float32%s", path.name, layout.name, filled
        )
    else:
        logger.info("%s: %s: diff3d read as the contract's diffraction", path.name, layout.name)


def read_scan_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of scan ``path`` under the contract's names (a whole-file read).

    Raises:
        DataError: as :func:`ptycho_torch.npz.read_npz` and :func:`scan_layout`.
    """
    arrays = read_npz(path, what="data file")  # no pickles; sizes checked before allocating
    layout = scan_layout(path, arrays)
    if layout is CONTRACT:
        return arrays
    _note(path, layout, arrays)
    patterns = arrays["diff3d"]
    _check_patterns_dtype(path, layout, patterns.dtype)
    out = {k: v for k, v in arrays.items() if k not in _DROPPED}
    out["diffraction"] = _amplitude(patterns) if layout.intensities else patterns
    probe = arrays["probeGuess"]
    if probe.ndim == 3:
        _probe_mode(path, probe.shape)
        out["probeGuess"] = probe[0]
    return out


class ScanRows:
    """:class:`ptycho_torch.npz.NpzRowReader` of a scan file, seen in the contract's names:
    ``members``, :meth:`array`, :meth:`rows` and :meth:`take` as the reader's, with a training
    file's ``diff3d`` served as ``diffraction`` (amplitudes) and a probe stack as its mode 0.

    Attributes:
        layout: the file's :class:`ScanLayout`.
        members: the contract's view of the file's arrays (shape and dtype as served).
    """

    def __init__(self, path: Path, what: str = "data file") -> None:
        self.path = Path(path)
        self._rows = NpzRowReader(self.path, what=what)
        try:
            self.layout = scan_layout(self.path, self._rows.members)
            self.members = self._view()
        except BaseException:
            self._rows.close()
            raise

    def _view(self) -> dict[str, NpzMember]:
        raw = self._rows.members
        if self.layout is CONTRACT:
            return raw
        patterns = raw["diff3d"]
        _check_patterns_dtype(self.path, self.layout, patterns.dtype)
        bad = {"bad_pixels": self._rows.array("bad_pixels")} if "bad_pixels" in raw else {}
        _note(self.path, self.layout, bad)
        view = {k: m for k, m in raw.items() if k not in _DROPPED}
        dtype = np.dtype(np.float32) if self.layout.intensities else patterns.dtype
        view["diffraction"] = NpzMember("diffraction", patterns.shape, dtype, patterns.nbytes)
        probe = raw["probeGuess"]
        view["probeGuess"] = NpzMember(
            "probeGuess", _probe_mode(self.path, probe.shape), probe.dtype, probe.nbytes
        )
        return view

    def __enter__(self) -> ScanRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._rows.close()

    def _key(self, key: str) -> str:
        return self.layout.diffraction_key if key == "diffraction" else key

    def _serve(self, key: str, values: np.ndarray) -> np.ndarray:
        if key == "diffraction" and self.layout.intensities:
            return _amplitude(values)
        return values

    def array(self, key: str) -> np.ndarray:
        """The whole array ``key`` (contract name)."""
        value = self._serve(key, self._rows.array(self._key(key)))
        if key == "probeGuess" and value.ndim == 3:
            value = value[0]
        return value

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``key`` (contract name)."""
        return self._serve(key, self._rows.rows(self._key(key), start, stop))

    def take(self, key: str, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` of ``key`` (contract name)."""
        return self._serve(key, self._rows.take(self._key(key), indices))
