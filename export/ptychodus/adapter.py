"""Between Ptychodus's data model and the torch-free :class:`export.predict.Predictor`.

:func:`scan_from_input` turns a ``ReconstructInput`` into the scan the predictor reads, with the
preprocessing Ptychodus's own PtychoPINN backend applies (``ptychodus/model/ptychopinn/
_subprocess.py``, ``_create_raw_data``): bad pixels inpainted by Ptychodus's
``inpaint_bad_pixels``, positions mapped to object pixels by the object geometry
(``ObjectGeometry.map_probe_positions_to_object_x_px``: pixel index ``(N-1)/2`` at the centre).
One difference, on purpose: Ptychodus's patterns are measured intensities and PtychoPINN's
network takes amplitudes (the data contract; the original's ``normalize_data``), so the
amplitude is ``sqrt``; Ptychodus's backend hands the intensities to the original unchanged.
:func:`product_from` puts the stitched object on the input product's object geometry.

Every check runs before the model does; a bad input is one :class:`PtychodusInputError` line
(exit 2) and nothing is written.
"""

from __future__ import annotations

import logging

import numpy as np
from ptychodus.api.object import Object, ObjectGeometry
from ptychodus.api.preprocess.diffraction import inpaint_bad_pixels
from ptychodus.api.product import Product
from ptychodus.api.reconstruct import ReconstructInput

from ptycho_torch.errors import DataError
from ptycho_torch.prepare import pattern_counts
from ptycho_torch.stitch import StitchedObject

__all__ = ["PatternScan", "PtychodusInputError", "product_from", "scan_from_input"]

log = logging.getLogger(__name__)


class PtychodusInputError(DataError):
    """A Ptychodus input the model cannot reconstruct (exit code 2), named with the fix."""


class PatternScan:
    """A scan held in memory (what :class:`export.predict.Predictor` reads): float32 amplitudes
    and patch centres in object pixels, on an object of ``object_shape``."""

    def __init__(
        self,
        path: str,
        amplitudes: np.ndarray,
        xcoords: np.ndarray,
        ycoords: np.ndarray,
        object_shape: tuple[int, int],
    ) -> None:
        self.path = path  # what the scan is, for messages
        self.amplitudes = amplitudes  # (n, N, N) float32
        self.xcoords, self.ycoords = xcoords, ycoords  # (n,) float64
        self.object_shape: tuple[int, int] | None = object_shape
        self.n, self.N = int(amplitudes.shape[0]), int(amplitudes.shape[-1])

    def pattern_counts(self) -> np.ndarray:
        return pattern_counts(self.amplitudes)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.amplitudes[np.asarray(indices)]


def scan_from_input(
    inp: ReconstructInput, model_n: int, source: str = "the Ptychodus input"
) -> PatternScan:
    """The scan of ``inp`` for a model of pattern side ``model_n``.

    Raises:
        PtychodusInputError: no positions, patterns and positions of different counts, patterns
            that are not ``model_n`` square, NaN/Inf or negative patterns, positions whose patch
            leaves the object geometry.
    """
    patterns = np.asarray(inp.diffraction_patterns)  # (n, H, W) measured intensities
    positions = inp.product.probe_positions
    if len(positions) == 0:
        raise PtychodusInputError(
            f"{source}: the product has no probe positions; load or import the scan positions "
            "into the product before reconstructing"
        )
    if patterns.ndim != 3 or len(patterns) != len(positions):
        raise PtychodusInputError(
            f"{source}: {len(patterns)} diffraction patterns but {len(positions)} probe positions; "
            "a ReconstructInput pairs them row by row (Ptychodus's prepare_reconstruct_input "
            "matches them by scan index), so the counts must be equal"
        )
    height, width = patterns.shape[-2:]
    if height != width or width != model_n:
        raise PtychodusInputError(
            f"{source}: the diffraction patterns are {height}x{width} but the model was exported "
            f"for N={model_n} ({model_n}x{model_n}): crop or bin them to {model_n}x{model_n} in "
            "Ptychodus's diffraction settings, or export a model trained for that size"
        )
    _check_values(source, patterns, positions.get_indexes())
    _describe_probe(inp)
    geometry = inp.product.object_.get_geometry()
    xcoords = np.asarray(geometry.map_probe_positions_to_object_x_px(positions), np.float64)
    ycoords = np.asarray(geometry.map_probe_positions_to_object_y_px(positions), np.float64)
    _check_inside(source, geometry, xcoords, ycoords, positions.get_indexes(), model_n)
    repaired = inpaint_bad_pixels(patterns, inp.bad_pixels)  # Ptychodus's own repair
    amplitudes = np.sqrt(repaired.astype(np.float32))
    return PatternScan(
        source, amplitudes, xcoords, ycoords, (geometry.height_px, geometry.width_px)
    )


def _check_values(source: str, patterns: np.ndarray, indexes: np.ndarray) -> None:
    if not (
        np.issubdtype(patterns.dtype, np.integer) or np.issubdtype(patterns.dtype, np.floating)
    ):
        raise PtychodusInputError(
            f"{source}: diffraction patterns of dtype {patterns.dtype}; expected real intensities"
        )
    flat = patterns.reshape(len(patterns), -1)
    for what, bad in (
        ("NaN or Inf", ~np.isfinite(flat).all(axis=1) if patterns.dtype.kind == "f" else None),
        ("negative", (flat < 0).any(axis=1)),
    ):
        if bad is not None and bad.any():
            rows = np.flatnonzero(bad)
            raise PtychodusInputError(
                f"{source}: {len(rows)} diffraction pattern(s) hold {what} values (first: row "
                f"{rows[0]}, scan index {int(indexes[rows[0]])}); measured intensities must be "
                "finite counts >= 0: mark the bad pixels, or leave those patterns out"
            )


def _check_inside(
    source: str,
    geometry: ObjectGeometry,
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    indexes: np.ndarray,
    n: int,
) -> None:
    """Every ``n x n`` patch, centred on its position, lies on the object array."""
    height, width = geometry.height_px, geometry.width_px
    half = n / 2
    outside = (
        (xcoords - half < 0)
        | (ycoords - half < 0)
        | (xcoords + half > width - 1)
        | (ycoords + half > height - 1)
        | ~np.isfinite(xcoords)
        | ~np.isfinite(ycoords)
    )
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise PtychodusInputError(
            f"{source}: {int(outside.sum())} of {len(xcoords)} probe positions put their "
            f"{n}x{n} patch outside the object geometry ({geometry}; first: scan index "
            f"{int(indexes[first])} at object pixel ({xcoords[first]:.1f}, {ycoords[first]:.1f})); "
            "enlarge the object (or re-centre it on the scan) in Ptychodus before reconstructing"
        )


def _describe_probe(inp: ReconstructInput) -> None:
    probes = inp.product.probes
    modes = probes.num_incoherent_modes
    if modes > 1 or len(probes) > 1:
        log.warning(
            "the product's probe has %d incoherent mode(s) and %d OPR mode(s); the exported "
            "model reconstructs from diffraction alone (its probe was fixed in training), so no "
            "mode of the product's probe is used; the output carries the probe unchanged",
            modes,
            len(probes),
        )
    obj = inp.product.object_.get_pixel_geometry()
    probe = probes.get_pixel_geometry()
    if not np.isclose(probe.width_m, obj.width_m, rtol=1e-3) or not np.isclose(
        probe.height_m, obj.height_m, rtol=1e-3
    ):
        log.warning(
            "probe pixels (%.4g x %.4g m) differ from object pixels (%.4g x %.4g m); PtychoPINN "
            "assumes they are equal (a patch pixel is an object pixel)",
            probe.width_m,
            probe.height_m,
            obj.width_m,
            obj.height_m,
        )


def product_from(inp: ReconstructInput, stitched: StitchedObject) -> Product:
    """The input product with the reconstructed object, on the input object's geometry (pixel
    size and centre); positions, probe and metadata unchanged, no losses."""
    obj = inp.product.object_
    reconstructed = Object(
        array=stitched.obj,  # (H, W) complex64, pixel for pixel on the input object's array
        pixel_geometry=obj.get_pixel_geometry(),
        center=obj.get_center(),
        layer_spacing_m=[],
    )
    return Product(
        metadata=inp.product.metadata,
        probe_positions=inp.product.probe_positions,
        probes=inp.product.probes,
        object_=reconstructed,
        losses=[],
    )
