"""The runner contract and the one backend vocabulary (Polygraphy's runners).

A runner is built cheaply; ``activate()`` loads what it runs, ``deactivate()`` frees it (both
idempotent; ``with runner:`` does both). ``infer(feed)`` checks the feed against the signature
and returns the outputs by name; ``infer(feed, intermediates)`` also values inside the network,
as Polygraphy marks extra outputs on the same runner. Each backend is one :class:`Backend`
member and one :class:`Runner` subclass naming it in ``backend``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from export.signature import AMPLITUDE, PHASE, Signature
from parity.errors import ParityError, RunnerNotActiveError
from parity.results import RunnerInfo

if TYPE_CHECKING:
    from export.manifest import Manifest

__all__ = [
    "PHYSICS_STEPS",
    "STEP_PREFIX",
    "Backend",
    "Intermediate",
    "Runner",
    "flat_step",
    "make_runner",
    "runner_type",
]


class Backend(StrEnum):
    """The backends, by the names ``bisect --pair`` takes (any case)."""

    EAGER = "eager"  # the checkpoint's PyTorch model
    TORCHSCRIPT = "torchscript"  # model.ts
    EXPORTED_PROGRAM = "exported-program"  # model.pt2 (torch.export); reports say pt2[cpu]
    ONNXRUNTIME = "onnxruntime"  # model.onnx in ONNX Runtime
    TF_TWIN = "tf-twin"  # the live TensorFlow twin with the checkpoint's weights
    TF_REFERENCE = "tf-reference"  # TensorFlow's outputs stored in a reference file

    @property
    def label(self) -> str:
        """What reports call a runner of this backend: ``pt2`` for the exported program."""
        return "pt2" if self is Backend.EXPORTED_PROGRAM else self.value

    @property
    def kind(self) -> str:
        """The runner ``kind`` reports record: ``tf-live`` for the twin, as reports always did."""
        return "tf-live" if self is Backend.TF_TWIN else self.value

    def runner_name(self, device: str) -> str:
        """``pt2[cpu]``; the stored reference runs nowhere: ``tf-reference``."""
        return self.label if self is Backend.TF_REFERENCE else f"{self.label}[{device}]"

    @classmethod
    def parse(cls, text: str) -> Backend:
        """The backend named ``text`` (its value or its label, any case); ``ValueError`` listing
        the names otherwise."""
        name = text.strip().lower()
        for backend in cls:
            if name in (backend.value, backend.label):
                return backend
        raise ValueError(f"unknown backend {text!r}; backends are {cls.names()}")

    @classmethod
    def names(cls, backends: Sequence[Backend] | None = None) -> str:
        """``eager, exported-program (pt2), ...``: how a message lists them."""
        return ", ".join(
            b.value if b.label == b.value else f"{b.value} ({b.label})"
            for b in (list(cls) if backends is None else backends)
        )


@dataclass(frozen=True)
class Intermediate:
    """A value inside the network that a runner can return beside its outputs."""

    # a conv layer's module path (also the twin's Keras layer name and, prefixed ``model.``, the
    # ONNX initializer of the Conv's weights), a physics step (``physics.obj``) or an output name
    name: str
    post: str  # "relu" or "silu" (the activation the original fuses into the conv), "none", "step"


STEP_PREFIX = "physics."
# The physics forward's steps that eager and the twin stop at (eager's ``physics_steps`` key,
# the steps each one is computed from); ONNX Runtime and .pt2 run the physics head whole.
PHYSICS_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "obj": ("obj", (AMPLITUDE, PHASE)),
    "padded_obj": ("padded_obj", ("obj",)),
    "trimmed_obj": ("trimmed_obj", ("padded_obj",)),
    "extracted_patches": ("extracted", ("padded_obj",)),
    "illuminated": ("illuminated", ("extracted_patches",)),
    "pred_amplitude_unscaled": ("pred_amplitude_unscaled", ("illuminated",)),
}


def flat_step(value: Any) -> np.ndarray:
    """A physics step as ``(B, elements)`` float32, complex as (re, im) pairs: canvases are
    ``(B, M, M)`` in eager and ``(B, 1, M, M)`` in the twin, the same values in the same order."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        array = np.stack([array.real, array.imag], axis=-1)
    return np.ascontiguousarray(array.reshape(array.shape[0], -1), dtype=np.float32)


class Runner(ABC):
    """Base class: ``with runner: runner.infer(feed)``. A subclass names its ``backend`` and
    implements ``_activate`` (which sets ``actual_device``), ``_deactivate``, ``_infer``, and
    ``_intermediates`` and ``for_build`` where it can."""

    backend: ClassVar[Backend]
    stops_at_layers: ClassVar[bool] = False  # infer(feed, intermediates) reaches conv layers
    physics_steps: ClassVar[bool] = False  # ... and the physics forward's steps
    _types: ClassVar[dict[Backend, type[Runner]]] = {}
    is_active: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backend" in cls.__dict__:
            Runner._types[cls.backend] = cls

    def __init__(self, name: str, signature: Signature, device: str) -> None:
        self.name = name
        self.signature = signature
        self.requested_device = device
        self.actual_device = device
        self.providers: list[str] = []
        self.detail: dict[str, Any] = {}
        self.seconds = 0.0

    @classmethod
    def for_build(cls, artifacts: Path, manifest: Manifest, device: str) -> Runner:
        """This backend on a build folder's files, named as reports name it (not activated);
        ``ParityError`` (exit 2) where it does not run from one alone, or not on ``device``."""
        raise ParityError(f"{cls.backend} does not run from a build folder alone")

    @property
    def kind(self) -> str:
        """The kind reports record (:attr:`Backend.kind`)."""
        return self.backend.kind

    def __enter__(self) -> Self:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load (a runner changed by hand while active is kept)."""
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        """Free what :meth:`activate` loaded."""
        if self.is_active:
            self.is_active = False
            self._deactivate()

    def infer(
        self, feed: Mapping[str, np.ndarray], intermediates: Sequence[Intermediate] = ()
    ) -> dict[str, np.ndarray]:
        """Check ``feed`` against the signature, then run; ``intermediates`` come back too, each
        under its name, NCHW float32 (physics steps ``(B, elements)``).

        Raises:
            RunnerNotActiveError: the runner was not activated (a bug in the caller).
            SignatureError: the feed does not match the signature.
            ParityError: (exit 2) intermediates asked of a backend that runs as one compiled
                program, or not found in its file.
        """
        if not self.is_active:
            raise RunnerNotActiveError(
                f"runner {self.name} is not active; use it as `with runner:` (or call "
                "activate()) before infer()"
            )
        self.signature.check_feed(feed)
        inside = [i for i in intermediates if i.name not in self.signature.output_names]
        start = time.perf_counter()
        outputs = self._intermediates(feed, inside) if inside else self._infer(feed)
        self.seconds += time.perf_counter() - start
        return outputs

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _intermediates(
        self, feed: Mapping[str, np.ndarray], wanted: Sequence[Intermediate]
    ) -> dict[str, np.ndarray]:
        """The outputs and every ``wanted`` value (none of them an output)."""
        raise ParityError(
            f"{self.name} runs as one compiled program and cannot be stopped at a layer"
        )

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


def runner_type(backend: Backend) -> type[Runner]:
    """The runner class of ``backend``."""
    return Runner._types[Backend(backend)]


def make_runner(backend: Backend, artifacts: Path, manifest: Manifest, device: str) -> Runner:
    """``backend`` on a build folder's files (:meth:`Runner.for_build`)."""
    return runner_type(backend).for_build(artifacts, manifest, device)
