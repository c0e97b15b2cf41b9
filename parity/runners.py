"""Runners: one contract for every backend (Polygraphy style).

A runner is built cheaply, then ``activate()`` loads what it runs (a model, a session, the
TensorFlow twin, the reference file) and sets ``is_active``; ``deactivate()`` frees it again. It is
a context manager, so ``with runner:`` (or ``ExitStack.enter_context``) never leaves one loaded
after an error. ``infer(feed) -> dict[str, ndarray]`` checks the feed against the signature
before the backend sees it; ``info()`` says which device the runner really used. The stored
reference replays like a runner: each ``infer`` returns its next rows, one chunk at a time.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.signature import Signature
from parity.errors import EnvironmentUnavailable, ReferenceFormatError, RunnerNotActiveError
from parity.lifecycle import Activatable
from parity.npz_stream import NpzRows
from parity.reference import ReferenceFile
from parity.results import RunnerInfo

__all__ = [
    "EagerRunner",
    "ExportedProgramRunner",
    "OnnxRuntimeRunner",
    "ReferenceRunner",
    "Runner",
    "TfTwinRunner",
    "TorchScriptRunner",
    "torch_device",
]


class Runner(Activatable):
    """Base class: ``with runner: runner.infer(feed)`` (load/free: :class:`Activatable`).

    Subclasses implement ``_activate`` (load, set ``actual_device``), ``_deactivate`` (drop what
    ``_activate`` loaded) and ``_infer``.
    """

    kind = "runner"

    def __init__(self, name: str, signature: Signature, device: str) -> None:
        self.name = name
        self.signature = signature
        self.requested_device = device
        self.actual_device = device
        self.providers: list[str] = []
        self.detail: dict[str, Any] = {}
        self.seconds = 0.0

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``feed`` against the signature, then run.

        Raises:
            RunnerNotActiveError: the runner was not activated (a bug in the caller).
            SignatureError: the feed does not match the signature.
        """
        if not self.is_active:
            raise RunnerNotActiveError(
                f"runner {self.name} is not active; use it as `with runner:` (or call "
                "activate()) before infer()"
            )
        self.signature.check_feed(feed)
        start = time.perf_counter()
        outputs = self._infer(feed)
        self.seconds += time.perf_counter() - start
        return outputs

    @abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            name=self.name,
            kind=self.kind,
            requested_device=self.requested_device,
            actual_device=self.actual_device,
            providers=list(self.providers),
            detail=dict(self.detail),
            seconds=self.seconds,
        )


def torch_device(device: str) -> str:
    """``device`` when torch can use it; ``EnvironmentUnavailable`` (exit 3) for a missing CUDA."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise EnvironmentUnavailable(
            "requested --device cuda but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); run with --device cpu"
        )
    return device


class _TorchRunner(Runner):
    def __init__(self, name: str, signature: Signature, device: str, path: Path) -> None:
        super().__init__(name, signature, device)
        self.path = path
        self._fn: Any = None  # a loaded, checked callable (export.artifacts.LoadedArtifact)

    def _deactivate(self) -> None:
        self._fn = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._fn(feed)


class EagerRunner(_TorchRunner):
    """The PyTorch model from its checkpoint, wrapped with the signature check.

    ``inference_mode`` (False: ``torch.no_grad``) and ``channels_last`` (the module and 4-D
    inputs in channels-last memory) are the eager modes ``python -m export bench`` tunes; the
    defaults are how every other command runs the model.
    """

    kind = "eager"

    def __init__(
        self,
        name: str,
        signature: Signature,
        device: str,
        path: Path,
        *,
        inference_mode: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__(name, signature, device, path)
        self.inference_mode, self.channels_last = inference_mode, channels_last

    def _activate(self) -> None:
        import torch

        from export.artifacts import LoadedArtifact
        from export.wrapper import wrap
        from ptycho_torch.checkpoint import load_model

        device = torch_device(self.requested_device)
        module = wrap(load_model(self.path), self.signature).to(device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._fn = LoadedArtifact(
            self.path,
            self.kind,
            self.signature,
            device,
            module,
            channels_last=self.channels_last,
            inference_mode=self.inference_mode,
        )
        self.actual_device = str(next(module.parameters()).device)


class TorchScriptRunner(_TorchRunner):
    kind = "torchscript"

    def _activate(self) -> None:
        from export.artifacts import load_torchscript

        self._fn = load_torchscript(self.path, torch_device(self.requested_device))
        self.actual_device = self.requested_device


class ExportedProgramRunner(_TorchRunner):
    kind = "exported-program"

    def _activate(self) -> None:
        from export.artifacts import load_program

        self._fn = load_program(self.path, torch_device(self.requested_device))
        self.actual_device = self.requested_device


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on one execution provider; a GPU request that fell back to CPU is exit 3."""

    kind = "onnxruntime"

    def __init__(
        self, name: str, signature: Signature, device: str, path: Path, session: Any = None
    ) -> None:
        super().__init__(name, signature, device)
        self.path = path
        self.session = session  # export.session.SessionSettings, or None: ORT's defaults
        self._host: Any = None  # export.host.OnnxHost: the session

    def _activate(self) -> None:
        from export.host import HostError, OnnxHost

        try:
            self._host = OnnxHost(self.path, device=self.requested_device, session=self.session)
        except HostError as exc:
            if exc.exit_code == 3:
                raise EnvironmentUnavailable(str(exc)) from None
            raise ReferenceFormatError(str(exc)) from None
        self.providers = self._host.providers
        if self.session is not None:
            self.detail["session"] = self.session.describe()
        self.actual_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        if self.requested_device == "cuda":
            # DFT has no CUDA kernel: say which nodes ONNX Runtime places on the CPU.
            self.detail["note"] = "ops without a CUDA kernel (e.g. DFT) run on the CPU provider"

    def _deactivate(self) -> None:
        self._host = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._host.run(feed)


class ReferenceRunner(Runner):
    """Replays a stored reference in order: each ``infer`` returns the next rows, as many as the
    feed holds (fewer at the end of the set), read from the NPZ members one chunk at a time."""

    kind = "tf-reference"

    def __init__(self, name: str, signature: Signature, reference: ReferenceFile) -> None:
        super().__init__(name, signature, str(reference.provenance.get("device", "cpu")))
        self.reference = reference
        self._rows: NpzRows | None = None
        self._next = 0  # the first row the next infer returns

    def _activate(self) -> None:
        held = self.reference.shapes
        missing = [n for n in self.signature.output_names if n not in held]
        if missing:
            raise ReferenceFormatError(
                f"reference {self.reference.path} lacks output(s) {missing}; it holds {sorted(held)}"
            )
        self._rows, self._next = NpzRows(self.reference.path, "reference file"), 0
        provenance = self.reference.provenance
        self.detail = {
            "generator": provenance.get("generator"),
            "tensorflow": provenance.get("tensorflow_version"),
            "keras": provenance.get("keras_version"),
            "device": provenance.get("device"),
        }

    def _deactivate(self) -> None:
        if self._rows is not None:
            self._rows.close()
            self._rows = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = self._next
        self._next += feed[self.signature.input_names[0]].shape[0]
        return self.rows(start, self._next)

    def rows(self, start: int, stop: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` (cut at the end of the reference) of the outputs ``names``
        (default: all), without moving the replay position.

        Raises:
            ReferenceFormatError: ``start`` is past the samples the reference holds.
        """
        if self._rows is None:
            raise RunnerNotActiveError(f"runner {self.name} is not active; activate it first")
        out = {}
        for name in self.signature.output_names if names is None else names:
            held = self.reference.shapes[name][0]
            if start >= held:
                raise ReferenceFormatError(
                    f"reference {self.reference.path}: {name!r} holds {held} samples, the inputs "
                    f"hold more (sample {start} asked); regenerate it from these inputs"
                )
            out[name] = self._rows.rows(name, start, stop)
        return out


class TfTwinRunner(Runner):
    """The live TensorFlow twin with the checkpoint's weights (optional; needs TensorFlow)."""

    kind = "tf-live"

    def __init__(self, name: str, signature: Signature, path: Path) -> None:
        super().__init__(name, signature, "cpu")
        self.path = path
        self._twin: Any = None  # the Keras model, built by activate

    def _activate(self) -> None:
        from parity.tf_twin.generate import make_twin
        from ptycho_torch.checkpoint import read_checkpoint

        config, state = read_checkpoint(self.path)
        self._twin = make_twin(config, state, self.signature.head)

    def _deactivate(self) -> None:
        self._twin = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from parity.tf_twin.generate import run_twin

        return run_twin(self._twin, self.signature, feed)
