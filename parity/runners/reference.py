"""The stored TensorFlow reference, replayed like a runner (Polygraphy's saved run results)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from export.errors import ReferenceFormatError
from export.signature import Signature
from parity.errors import RunnerNotActiveError
from parity.reference import ReferenceFile
from parity.runners.base import Backend, Runner
from ptycho_torch.npz import NpzRowReader

__all__ = ["ReferenceRunner"]


class ReferenceRunner(Runner):
    """Replays a stored reference in order: each ``infer`` returns the next rows, as many as the
    feed holds (fewer at the end of the set), read from the NPZ members one chunk at a time."""

    backend = Backend.TF_REFERENCE

    def __init__(self, name: str, signature: Signature, reference: ReferenceFile) -> None:
        super().__init__(name, signature, str(reference.provenance.get("device", "cpu")))
        self.reference = reference
        self._rows: NpzRowReader | None = None
        self._next = 0  # the first row the next infer returns

    def _activate(self) -> None:
        held = self.reference.shapes
        missing = [n for n in self.signature.output_names if n not in held]
        if missing:
            raise ReferenceFormatError(
                f"reference {self.reference.path} lacks output(s) {missing}; it holds {sorted(held)}"
            )
        self._rows, self._next = NpzRowReader(self.reference.path, "reference file"), 0
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
        (default: all), without moving the replay position; ``ReferenceFormatError`` when
        ``start`` is past the samples the reference holds."""
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
