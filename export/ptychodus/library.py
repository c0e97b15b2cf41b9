"""PtychoPINN's exported ONNX model in Ptychodus, run in a child process: the
``ReconstructorLibrary`` a facility registers in Ptychodus's ``ModelCore``.

The Ptychodus process imports this module and Ptychodus's own subprocess machinery
(``ptychodus/model/processing/subprocess_reconstructor.py``) only, never ONNX Runtime: each
``reconstruct()`` spawns a child that runs :func:`export.ptychodus.child.run_reconstruct` on a
:class:`ReconstructPayload` (the artifacts, the device and the ``ReconstructInput``), which
verifies the artifacts, reconstructs with :class:`export.ptychodus.reconstructor.OnnxReconstructor`
and puts the ``ReconstructOutput`` on the queue. Loading a model checks the manifest and every
file's sha256 here (no ONNX Runtime); the child verifies the parity batch as ``export verify``
does before it reconstructs.

Registration, in ``ptychodus/model/core.py`` (``ModelCore.__init__``)::

    from export.ptychodus.library import PtychoPINNOnnxLibrary

    self.ptychopinn_onnx_reconstructor_library = PtychoPINNOnnxLibrary(
        self.settings_registry, self.is_developer_mode_enabled
    )
    # ... and add self.ptychopinn_onnx_reconstructor_library to the list of
    # libraries given to ProcessingCore(...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ptychodus.api.io import save_ptychopinn_training_data
from ptychodus.api.reconstruct import (
    ReconstructInput,
    Reconstructor,
    ReconstructorLibrary,
    TrainOutput,
)
from ptychodus.api.settings import SettingsRegistry
from ptychodus.model.processing.subprocess_reconstructor import SubprocessReconstructor

from core.device import as_device
from core.tolerances import Device
from export.archive import open_artifacts
from export.errors import ManifestError
from export.manifest import read_manifest
from export.ptychodus.model_file import (
    MODEL_FILE_EXTENSION,
    MODEL_FILE_FILTER,
    PROGRESS_GOAL,
    TRAINING_DATA_FILE_FILTER,
    TRAINING_HINT,
    artifacts_path,
    save_model_file,
)

__all__ = [
    "CHILD_ENTRY",
    "OnnxSubprocessReconstructor",
    "PtychoPINNOnnxLibrary",
    "ReconstructPayload",
]

CHILD_ENTRY = "export.ptychodus.child:run_reconstruct"


@dataclass(frozen=True)
class ReconstructPayload:
    """What the child needs: the artifacts (folder or archive), the device, the input."""

    artifacts: Path
    device: Device
    reconstruct_input: ReconstructInput


class OnnxSubprocessReconstructor(SubprocessReconstructor):
    """:class:`export.ptychodus.reconstructor.OnnxReconstructor` in a fresh child per call.

    Args:
        name: the name Ptychodus lists.
        device: ONNX Runtime device (``cpu``/``cuda``), or a function giving it at each call
            as a plain string (Ptychodus's ``Device`` setting), checked at each call.
    """

    def __init__(self, name: str = "ONNX", device: Device | Callable[[], str] = "cpu") -> None:
        self._device = device if callable(device) else (lambda: device)
        super().__init__(
            name=name,
            reconstruct_entry_point=CHILD_ENTRY,
            progress_goal_fn=lambda: PROGRESS_GOAL,
            build_reconstruct_payload=self._payload,
            is_trainable=True,
            model_file_filter=MODEL_FILE_FILTER,
            model_file_extension=MODEL_FILE_EXTENSION,
            training_data_file_filter=TRAINING_DATA_FILE_FILTER,
            export_training_data=save_ptychopinn_training_data,
            save_model=save_model_file,
        )

    def _payload(self, parameters: ReconstructInput, model: Path | None) -> ReconstructPayload:
        if model is None:
            raise ManifestError(
                f"{self.name}: no PtychoPINN ONNX model is loaded: load an artifacts folder, its "
                "manifest.json or a .tar.gz from `python -m export pack` first"
            )
        try:  # the one check of the setting's string: the payload's device is typed
            device = as_device(self._device(), "the PtychoPINNOnnx Device setting")
        except ValueError as exc:
            raise ManifestError(f"{self.name}: {exc}") from None
        return ReconstructPayload(model, device, parameters)

    def load_model_from_file(self, file_path: Path) -> None:
        """Check the manifest and every file's sha256 (exit 4 if changed), without ONNX Runtime;
        the child runs the rest of ``export verify`` before each reconstruction."""
        path = artifacts_path(file_path)
        with open_artifacts(path) as directory:
            read_manifest(directory)
        super().load_model_from_file(path)

    def train(self, input_path: Path, output_path: Path) -> Iterator[TrainOutput]:
        raise NotImplementedError(TRAINING_HINT)


class PtychoPINNOnnxLibrary(ReconstructorLibrary):
    """The ``ReconstructorLibrary`` Ptychodus's ``ModelCore`` registers (module docstring).

    Settings group ``PtychoPINNOnnx``: ``Device`` (``cpu`` or ``cuda``, read at each call).
    """

    def __init__(
        self,
        settings_registry: SettingsRegistry | None = None,
        is_developer_mode_enabled: bool = False,
    ) -> None:
        super().__init__("ptychopinn-onnx")
        self.device: Device = "cpu"
        if settings_registry is not None:
            group = settings_registry.create_group("PtychoPINNOnnx")
            parameter = group.create_string_parameter("Device", "cpu")
            self._reconstructors: list[Reconstructor] = [
                OnnxSubprocessReconstructor("ONNX", parameter.get_value)
            ]
        else:
            self._reconstructors = [OnnxSubprocessReconstructor("ONNX", lambda: self.device)]

    @property
    def name(self) -> str:
        return "PtychoPINN ONNX"

    def __iter__(self) -> Iterator[Reconstructor]:
        return iter(self._reconstructors)
