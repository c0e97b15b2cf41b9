"""``python -m export predict --product IN.h5 --data PATTERNS --out OUT.h5``: Ptychodus's files in,
a Ptychodus product out, through the same :class:`OnnxReconstructor` Ptychodus runs.

``--product`` is read with Ptychodus's ``load_product``. ``--data`` holds the patterns:
a Ptychodus diffraction file (its NPZ format: ``patterns``, optional ``indexes`` and
``bad_pixels``, as its ``NPZDiffractionFileIO`` writes; or its HDF5 ``save_diffraction_data``
file), paired with the product's positions by scan index; or a training NPZ (Ptychodus's
``save_ptychopinn_training_data``, the original PtychoPINN's ``diff3d``, or a data-contract scan),
paired row by row (they carry no scan indexes). ``OUT.h5`` is written with Ptychodus's
``save_product``, atomically, only after the reconstruction succeeded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ptychodus.api.io import load_diffraction_data, load_product, save_product
from ptychodus.api.probe_positions import ProbePositionSequence
from ptychodus.api.product import Product
from ptychodus.api.reconstruct import ReconstructInput

from core.tolerances import Device
from export.predict import Prediction, Progress
from export.ptychodus.adapter import PtychodusInputError, product_from
from export.ptychodus.reconstructor import OnnxReconstructor
from ptycho_torch.npz import read_npz
from ptycho_torch.scan_layouts import PTYCHODUS, scan_layout

__all__ = ["PatternsFile", "ProductPrediction", "predict_product", "read_patterns", "read_product"]


@dataclass(frozen=True)
class PatternsFile:
    """Measured intensities read from ``--data`` and how to pair them with positions."""

    patterns: np.ndarray  # (n, H, W) intensities, as Ptychodus holds them
    indexes: np.ndarray | None  # scan index per pattern; None: paired row by row
    bad_pixels: np.ndarray | None  # (H, W) bool, still to be repaired
    what: str  # the file's kind, for messages


def read_product(path: Path) -> Product:
    """A Ptychodus product file, read by Ptychodus's ``load_product``.

    Raises:
        PtychodusInputError: (exit 2) missing, or not a product file.
    """
    if not path.is_file():
        raise PtychodusInputError(f"product file {path} does not exist")
    try:
        return load_product(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise PtychodusInputError(
            f"{path} is not a Ptychodus product file ({type(exc).__name__}: {exc}); save one from "
            "Ptychodus (Product > Save) or with ptychodus.api.io.save_product"
        ) from None


def read_patterns(path: Path) -> PatternsFile:
    """The patterns of ``--data`` (module docstring for the formats).

    Raises:
        DataError: (exit 2) missing, unreadable, or none of the formats.
    """
    if not path.is_file():
        raise PtychodusInputError(f"diffraction file {path} does not exist")
    if path.suffix.lower() in (".h5", ".hdf5"):
        try:
            data = load_diffraction_data(path)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise PtychodusInputError(
                f"{path} is not a Ptychodus diffraction file ({type(exc).__name__}: {exc})"
            ) from None
        return PatternsFile(
            data.get_patterns(), data.get_indexes(), data.get_bad_pixels(), "Ptychodus HDF5"
        )
    arrays = read_npz(path, what="diffraction file")  # no pickles, sizes checked
    if "patterns" in arrays:
        patterns = arrays["patterns"]
        indexes = arrays.get("indexes", np.arange(len(patterns)))
        bad = arrays.get("bad_pixels")
        return PatternsFile(patterns, indexes, bad, "Ptychodus NPZ diffraction file")
    layout = scan_layout(path, arrays)  # neither: one error naming both layouts' keys
    values = arrays[layout.diffraction_key]
    if layout is PTYCHODUS:  # already repaired by Ptychodus; bad_pixels only says where
        return PatternsFile(values, None, None, layout.name)
    amplitudes = values.astype(np.float32)  # the contract and the original hold amplitudes
    return PatternsFile(np.square(amplitudes), None, None, layout.name)


def pair(
    patterns: PatternsFile, product: Product, data: Path, product_path: Path
) -> ReconstructInput:
    """``patterns`` and the product's positions as one ``ReconstructInput``.

    Raises:
        PtychodusInputError: (exit 2) counts or scan indexes that do not pair up, saying how
            they were paired.
    """
    positions = product.probe_positions
    values = np.asarray(patterns.patterns)
    if len(positions) == 0:
        raise PtychodusInputError(
            f"{product_path} has no probe positions; save the product after loading the scan "
            "positions into it"
        )
    if values.ndim != 3:
        raise PtychodusInputError(f"{data}: patterns must be (n, H, W), found {values.shape}")
    if patterns.indexes is None:
        if len(values) != len(positions):
            raise PtychodusInputError(
                f"{data} holds {len(values)} patterns and {product_path} {len(positions)} probe "
                f"positions; a {patterns.what} carries no scan indexes, so they are paired row by "
                "row and the counts must be equal"
            )
        return ReconstructInput(values, _bad_pixels(patterns, values, data), product)
    wanted = np.asarray(patterns.indexes).astype(np.int64)
    if wanted.shape != (len(values),):
        raise PtychodusInputError(
            f"{data}: {len(values)} patterns but {wanted.size} scan indexes ('indexes'); write "
            "one scan index per pattern"
        )
    have = positions.get_indexes().astype(np.int64)
    row = {int(index): k for k, index in enumerate(have)}
    missing = [int(i) for i in wanted if int(i) not in row]
    unused = sorted(set(row) - {int(i) for i in wanted})
    repeated = len(set(wanted.tolist())) != len(wanted) or len(row) != len(have)
    if missing or unused or repeated:
        raise PtychodusInputError(
            f"{data} holds {len(values)} patterns (scan indexes {_span(wanted)}) and "
            f"{product_path} {len(positions)} probe positions (scan indexes {_span(have)}); they "
            f"are paired by scan index, one position per pattern: {len(missing)} pattern(s) have "
            f"no position{_first(missing)}, {len(unused)} position(s) no pattern{_first(unused)}"
            + ("; a scan index repeats" if repeated else "")
        )
    order = [row[int(i)] for i in wanted]
    paired = Product(
        metadata=product.metadata,
        probe_positions=ProbePositionSequence([positions[k] for k in order]),
        probes=product.probes,
        object_=product.object_,
        losses=product.losses,
    )
    return ReconstructInput(values, _bad_pixels(patterns, values, data), paired)


def _bad_pixels(patterns: PatternsFile, values: np.ndarray, data: Path) -> np.ndarray:
    """The ``(H, W)`` bool mask of pixels to repair (none: all False, as Ptychodus does)."""
    if patterns.bad_pixels is None:
        return np.zeros(values.shape[1:], dtype=bool)
    mask = np.asarray(patterns.bad_pixels)
    if mask.shape != values.shape[1:]:
        raise PtychodusInputError(
            f"{data}: bad_pixels is {mask.shape} but the patterns are {values.shape[1:]}"
        )
    return mask.astype(bool)


def _span(indexes: np.ndarray) -> str:
    return f"{int(indexes.min())}..{int(indexes.max())}" if len(indexes) else "none"


def _first(indexes: list[int]) -> str:
    return f" (first: {indexes[:3]})" if indexes else ""


@dataclass(frozen=True)
class ProductPrediction:
    """What ``predict --product`` did: the prediction and the product written."""

    prediction: Prediction
    product: Product
    out: Path

    def lines(self) -> list[str]:
        obj = self.product.object_
        geometry = obj.get_geometry()
        weight = self.prediction.stitched.weight
        return [
            f"{self.prediction.stats.summary()}; object {geometry.width_px}x{geometry.height_px} "
            f"on the product's object geometry ({geometry.pixel_width_m:.4g} x "
            f"{geometry.pixel_height_m:.4g} m pixels, centre ({geometry.center_x_m:.4g}, "
            f"{geometry.center_y_m:.4g}) m), {100 * float((weight > 0).mean()):.0f}% covered",
            f"wrote {self.out} (Ptychodus product {self.product.metadata.name!r}: reconstructed "
            f"object, {len(self.product.probe_positions)} probe positions, probe, metadata)",
        ]


def predict_product(
    artifacts: Path,
    product_path: Path,
    data: Path,
    out: Path,
    device: Device = "cpu",
    progress: Progress | None = None,
) -> ProductPrediction:
    """Reconstruct ``data`` on ``product_path``'s geometry and write ``out`` (Ptychodus HDF5).

    Raises:
        PtychodusInputError: (exit 2) bad input, named; nothing is written.
        (and what :meth:`OnnxReconstructor.load_model_from_file` raises)
    """
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise PtychodusInputError(
            f"--out {out}: with --product the output is a Ptychodus product file: give OUT.h5"
        )
    if out.is_dir():
        raise PtychodusInputError(f"--out {out} is a folder; give the product file to write")
    product = read_product(product_path)
    inp = pair(read_patterns(data), product, data, product_path)
    reconstructor = OnnxReconstructor(device=device)
    reconstructor.load_model_from_file(artifacts)
    prediction = reconstructor.predict(inp, str(data), progress)
    result = product_from(inp, prediction.stitched)
    _save_atomically(out, result)
    return ProductPrediction(prediction, result, out)


def _save_atomically(out: Path, product: Product) -> None:
    """``save_product`` into a temporary file beside ``out``, renamed over it when complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_product(Path(tmp), product)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
