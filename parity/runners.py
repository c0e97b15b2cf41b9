"""Runners: one contract for every backend (Polygraphy style).

A runner is a context manager with ``infer(feed) -> dict[str, ndarray]``; the feed is checked
against the signature before the backend sees it. ``info()`` says which device the runner
really used. The stored reference replays like a runner: ``infer`` returns the reference rows
for the samples being compared.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.signature import Signature
from parity.errors import EnvironmentUnavailable, ReferenceFormatError
from parity.npz_stream import NpzRows
from parity.results import RunnerInfo

__all__ = [
    "EagerRunner",
    "ExportedProgramRunner",
    "OnnxRuntimeRunner",
    "ReferenceRunner",
    "Runner",
    "TfTwinRunner",
    "TorchScriptRunner",
]


class Runner(ABC):
    """Base class: ``with runner: runner.infer(feed, samples)``."""

    kind = "runner"

    def __init__(self, name: str, signature: Signature, device: str) -> None:
        self.name = name
        self.signature = signature
        self.requested_device = device
        self.actual_device = device
        self.providers: list[str] = []
        self.detail: dict[str, Any] = {}
        self.seconds = 0.0

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:  # noqa: B027 - optional hook
        """Load the backend."""

    def deactivate(self) -> None:  # noqa: B027 - optional hook
        """Release the backend."""

    def infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None = None
    ) -> dict[str, np.ndarray]:
        """Check ``feed`` against the signature, then run. ``samples`` locates the rows in the set."""
        self.signature.check_feed(feed)
        start = time.perf_counter()
        outputs = self._infer(feed, samples)
        self.seconds += time.perf_counter() - start
        return outputs

    @abstractmethod
    def _infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None
    ) -> dict[str, np.ndarray]: ...

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


def _torch_device(device: str) -> str:
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
        self._fn: Any = None

    def _infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None
    ) -> dict[str, np.ndarray]:
        return self._fn(feed)


class EagerRunner(_TorchRunner):
    """The PyTorch model from its checkpoint, wrapped with the signature check."""

    kind = "eager"

    def activate(self) -> None:
        from export.artifacts import LoadedArtifact
        from export.wrapper import wrap
        from ptycho_torch.checkpoint import load_model

        device = _torch_device(self.requested_device)
        module = wrap(load_model(self.path), self.signature).to(device)
        self._fn = LoadedArtifact(self.path, self.kind, self.signature, device, module)
        self.actual_device = str(next(module.parameters()).device)


class TorchScriptRunner(_TorchRunner):
    kind = "torchscript"

    def activate(self) -> None:
        from export.artifacts import load_torchscript

        self._fn = load_torchscript(self.path, _torch_device(self.requested_device))
        self.actual_device = self.requested_device


class ExportedProgramRunner(_TorchRunner):
    kind = "exported-program"

    def activate(self) -> None:
        from export.artifacts import load_program

        self._fn = load_program(self.path, _torch_device(self.requested_device))
        self.actual_device = self.requested_device


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on one execution provider; a GPU request that fell back to CPU is exit 3."""

    kind = "onnxruntime"

    def __init__(self, name: str, signature: Signature, device: str, path: Path) -> None:
        super().__init__(name, signature, device)
        self.path = path
        self._host: Any = None

    def activate(self) -> None:
        from export.host import HostError, OnnxHost

        try:
            self._host = OnnxHost(self.path, device=self.requested_device)
        except HostError as exc:
            if exc.exit_code == 3:
                raise EnvironmentUnavailable(str(exc)) from None
            raise ReferenceFormatError(str(exc)) from None
        self.providers = self._host.providers
        self.actual_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        if self.requested_device == "cuda":
            # DFT has no CUDA kernel: say which nodes ONNX Runtime places on the CPU.
            self.detail["note"] = "ops without a CUDA kernel (e.g. DFT) run on the CPU provider"

    def _infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None
    ) -> dict[str, np.ndarray]:
        return self._host.run(feed)


class ReferenceRunner(Runner):
    """Replays a stored reference: rows ``samples`` of ``reference.npz``."""

    kind = "tf-reference"

    def __init__(
        self, name: str, signature: Signature, path: Path, provenance: dict[str, Any]
    ) -> None:
        super().__init__(name, signature, str(provenance.get("device", "cpu")))
        self.path = path
        self.provenance = provenance
        self._rows: NpzRows | None = None

    def activate(self) -> None:
        self._rows = NpzRows(self.path)
        missing = [n for n in self.signature.output_names if n not in self._rows.keys]
        if missing:
            raise ReferenceFormatError(
                f"reference {self.path} lacks output(s) {missing}; it holds {self._rows.keys}"
            )
        self.detail = {
            "generator": self.provenance.get("generator"),
            "tensorflow": self.provenance.get("tensorflow_version"),
            "keras": self.provenance.get("keras_version"),
            "device": self.provenance.get("device"),
        }

    def deactivate(self) -> None:
        if self._rows is not None:
            self._rows.close()

    def _infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None
    ) -> dict[str, np.ndarray]:
        assert self._rows is not None
        batch = feed[self.signature.input_names[0]].shape[0]
        sl = samples or slice(0, batch)
        return {n: self._rows.rows(n, sl.start, sl.stop) for n in self.signature.output_names}


class TfTwinRunner(Runner):
    """The live TensorFlow twin with the checkpoint's weights (optional; needs TensorFlow)."""

    kind = "tf-live"

    def __init__(self, name: str, signature: Signature, path: Path) -> None:
        super().__init__(name, signature, "cpu")
        self.path = path
        self._state: Any = None

    def activate(self) -> None:
        from ptycho_torch.checkpoint import read_checkpoint

        self._config, self._state = read_checkpoint(self.path)

    def _infer(
        self, feed: Mapping[str, np.ndarray], samples: slice | None
    ) -> dict[str, np.ndarray]:
        from parity.tf_twin.generate import twin_predict

        return twin_predict(self._config, self._state, dict(feed), self.signature.head)
