"""Runners: one contract for every backend (Polygraphy style), see :mod:`parity.runners.base`."""

from parity.runners.base import (
    PHYSICS_STEPS,
    STEP_PREFIX,
    Backend,
    Intermediate,
    Runner,
    make_runner,
    runner_type,
)
from parity.runners.onnxrt import OnnxRuntimeRunner
from parity.runners.pytorch import (
    EagerRunner,
    ExportedProgramRunner,
    TorchScriptRunner,
    torch_device,
)
from parity.runners.reference import ReferenceRunner
from parity.runners.twin import TfTwinRunner

__all__ = [
    "PHYSICS_STEPS",
    "STEP_PREFIX",
    "Backend",
    "EagerRunner",
    "ExportedProgramRunner",
    "Intermediate",
    "OnnxRuntimeRunner",
    "ReferenceRunner",
    "Runner",
    "TfTwinRunner",
    "TorchScriptRunner",
    "make_runner",
    "runner_type",
    "torch_device",
]
