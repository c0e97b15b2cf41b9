"""The exported ONNX model as a Ptychodus reconstructor, run in the calling process.

:class:`OnnxReconstructor` implements ``ptychodus.api.reconstruct.TrainableReconstructor`` (the
interface through which Ptychodus loads models): :meth:`~OnnxReconstructor.load_model_from_file`
takes an artifacts folder, its ``manifest.json`` or a ``.tar.gz`` from ``python -m export pack``
and verifies it as ``python -m export verify`` does; :meth:`~OnnxReconstructor.reconstruct`
runs the torch-free :class:`export.predict.Predictor` on the input (prepared by
:mod:`export.ptychodus.adapter`) and yields one ``ReconstructOutput`` whose object lies on the
input product's object geometry. Training is not done here: ``export_training_data`` writes
Ptychodus's PtychoPINN NPZ, which ``python -m export train --data`` reads.

In Ptychodus itself, use :mod:`export.ptychodus.library`, which runs this class in a child
process so that the Ptychodus process never loads ONNX Runtime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from ptychodus.api.io import save_ptychopinn_training_data
from ptychodus.api.reconstruct import (
    ReconstructInput,
    ReconstructOutput,
    TrainableReconstructor,
    TrainOutput,
)

from core.tolerances import Device
from export.archive import open_artifacts
from export.errors import ManifestError
from export.predict import Prediction, Predictor, Progress
from export.ptychodus.adapter import product_from, scan_from_input
from export.ptychodus.model_file import (
    MODEL_FILE_EXTENSION,
    MODEL_FILE_FILTER,
    PROGRESS_GOAL,
    TRAINING_DATA_FILE_FILTER,
    TRAINING_HINT,
    artifacts_path,
    save_model_file,
)
from export.verify import VerifyOptions, VerifyReport, verify_artifacts

__all__ = ["OnnxReconstructor"]

log = logging.getLogger(__name__)


class OnnxReconstructor(TrainableReconstructor):
    """PtychoPINN's exported ONNX model, torch-free, as a Ptychodus reconstructor.

    Args:
        name: the name Ptychodus lists.
        device: ONNX Runtime device, ``cpu`` or ``cuda``.
    """

    def __init__(self, name: str = "ONNX", device: Device = "cpu") -> None:
        self._name, self.device = name, device
        self._source: Path | None = None  # what was loaded, as given
        self._predictor: Predictor | None = None
        self.verify_report: VerifyReport | None = None

    @property
    def name(self) -> str:
        return self._name

    def get_progress_goal(self) -> int:
        return PROGRESS_GOAL

    # --- the model ---------------------------------------------------------------------------

    def is_model_loaded(self) -> bool:
        return self._predictor is not None

    def get_model_file_filter(self) -> str:
        return MODEL_FILE_FILTER

    def get_model_file_extension(self) -> str:
        return MODEL_FILE_EXTENSION

    def load_model_from_file(self, file_path: Path) -> None:
        """Verify the artifacts as ``python -m export verify`` does (hashes, manifest, the bundled
        parity batch on this device), then keep an ONNX Runtime session open on them.

        Raises:
            ManifestError, ArchiveError: (exit 2) not artifacts.
            ArtifactsChangedError, StaleReferenceError: (exit 4) changed since the build.
            OutputMismatchError: (exit 1) outputs beyond tolerance of the bundled reference.
            HostError: (exit 3) CUDA requested but not running.
        """
        source = artifacts_path(file_path)
        with open_artifacts(source) as directory:  # an archive: unpacked until the block ends
            report = verify_artifacts(directory, VerifyOptions(device=self.device))
            report.check()
            predictor = Predictor(directory, device=self.device)  # the session outlives the folder
        self.verify_report = report
        self._source, self._predictor = source, predictor
        log.info("loaded %s: %s", source, report.lines()[-1])

    def save_model(self, file_path: Path) -> None:
        """Write the loaded artifacts as one archive (``python -m export pack``'s format)."""
        if self._source is None:
            raise ManifestError(
                "no PtychoPINN ONNX model is loaded: load an artifacts folder first"
            )
        save_model_file(self._source, file_path)

    # --- reconstruction ----------------------------------------------------------------------

    def reconstruct(self, parameters: ReconstructInput) -> Iterator[ReconstructOutput]:
        """One ``ReconstructOutput`` (progress :data:`PROGRESS_GOAL`): the input product with the
        reconstructed object on its object geometry. Progress lines go to the log.

        Raises:
            ManifestError: no model loaded.
            PtychodusInputError: (exit 2) an input the model cannot reconstruct.
        """
        prediction = self.predict(parameters)
        yield ReconstructOutput(product_from(parameters, prediction.stitched), PROGRESS_GOAL)

    def predict(
        self,
        parameters: ReconstructInput,
        source: str | None = None,
        progress: Progress | None = None,
    ) -> Prediction:
        """The stitched object of ``parameters`` and how it was made (:meth:`reconstruct`'s work);
        ``source`` names the input in messages, ``progress`` replaces the log lines."""
        if self._predictor is None:
            raise ManifestError(
                f"{self._name}: no PtychoPINN ONNX model is loaded: load an artifacts folder, its "
                "manifest.json or a .tar.gz from `python -m export pack` first"
            )
        name = parameters.product.metadata.name
        scan = scan_from_input(parameters, self._predictor.N, source or f"product {name!r}")
        return self._predictor.predict(scan, progress or _LogProgress())

    # --- training: elsewhere -----------------------------------------------------------------

    def get_training_data_file_filter(self) -> str:
        return TRAINING_DATA_FILE_FILTER

    def export_training_data(self, file_path: Path, parameters: ReconstructInput) -> None:
        """Ptychodus's PtychoPINN NPZ, which ``python -m export train --data`` reads."""
        save_ptychopinn_training_data(file_path, parameters)

    def train(self, input_path: Path, output_path: Path) -> Iterator[TrainOutput]:
        raise NotImplementedError(TRAINING_HINT)


class _LogProgress:
    """``predict: 2048/10000 patterns (20%)`` in the log every 2 s (Ptychodus shows its log)."""

    def __init__(self, every: float = 2.0) -> None:
        self.every, self.last = every, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            log.info("predict: %d/%d patterns (%d%%)", done, total, 100 * done // total)
            self.last = now
