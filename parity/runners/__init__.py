"""Runners: one contract for every backend (Polygraphy style).

A runner is built cheaply, then ``activate()`` loads what it runs (a model, a session, the
TensorFlow twin, the reference file) and sets ``is_active``; ``deactivate()`` frees it again. It is
a context manager, so ``with runner:`` (or ``ExitStack.enter_context``) never leaves one loaded
after an error. ``infer(feed) -> dict[str, ndarray]`` checks the feed against the signature
before the backend sees it; ``infer(feed, intermediates)`` also returns values inside the network
(what ``parity bisect`` compares). ``info()`` says which device the runner really used. The
stored reference replays like a runner: each ``infer`` returns its next rows, one chunk at a time.

A new backend is one :class:`Backend` member and one :class:`Runner` subclass in a module of
this package that sets ``backend`` (imported below).
"""

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
