"""The one description of what goes into and comes out of an exported artifact.

Exporters, the manifest, every parity runner's input check and the reference generator read
this. Shapes are fixed at export time (batch ``B`` included); every tensor is float32; complex
values never cross an artifact boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from export.errors import SignatureError
from ptycho_torch.config import ModelConfig

__all__ = [
    "Head",
    "AMPLITUDE",
    "HEADS",
    "OUTPUT_NAMES",
    "PHASE",
    "PRED_AMPLITUDE",
    "Signature",
    "TensorSpec",
    "make_signature",
]

Head = Literal["object", "physics"]
HEADS: tuple[Head, ...] = ("object", "physics")
# Output names, declared here once; what each output means is in its TensorSpec (make_signature).
AMPLITUDE = "amplitude"
PHASE = "phase"
PRED_AMPLITUDE = "pred_amplitude"
OUTPUT_NAMES = (AMPLITUDE, PHASE, PRED_AMPLITUDE)  # every output of any head


@dataclass(frozen=True)
class TensorSpec:
    """One named, fixed-shape float32 tensor, and what its values mean for comparison."""

    name: str
    shape: tuple[int, ...]
    layout: str  # meaning of each axis, e.g. "B,C,N,N"
    dtype: str = "float32"
    wraps: bool = False  # an angle: differences are folded into (-pi, pi] before comparing
    weighted_by: str | None = None  # output whose magnitude weights this one's errors

    def describe(self) -> str:
        """``float32[4, 1, 64, 64]``."""
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"

    def check(self, value: Any, role: str = "input") -> None:
        """Raise :class:`SignatureError` unless ``value`` has exactly this dtype and shape."""
        dtype = _dtype_name(value)
        shape = tuple(int(d) for d in getattr(value, "shape", ()))
        if dtype == self.dtype and shape == self.shape:
            return
        found = f"{dtype}[{', '.join(map(str, shape))}]"
        fix = []
        if dtype != self.dtype:
            fix.append(f"cast it with .astype(np.{self.dtype})")
        if shape != self.shape:
            fix.append(_shape_fix(shape, self.shape, self.layout))
        raise SignatureError(
            f"{role} {self.name!r}: expected {self.describe()} ({self.layout}), got {found}; "
            + " and ".join(fix)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "layout": self.layout,
            "wraps": self.wraps,
            "weighted_by": self.weighted_by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        # manifests written before the meaning fields existed: the phase output was the angle
        legacy_phase = "wraps" not in d and d["name"] == PHASE
        return cls(
            name=d["name"],
            shape=tuple(d["shape"]),
            layout=d["layout"],
            dtype=d["dtype"],
            wraps=bool(d.get("wraps", legacy_phase)),
            weighted_by=d.get("weighted_by", AMPLITUDE if legacy_phase else None),
        )


def _shape_fix(found: tuple[int, ...], expected: tuple[int, ...], layout: str) -> str:
    """Advice for a wrong shape: a transpose when the axes are only in another order."""
    if len(found) == len(expected) == 4 and found == (
        expected[0],
        expected[2],
        expected[3],
        expected[1],
    ):
        return (
            "it looks channels-last (B, N, N, C): transpose it with .transpose(0, 3, 1, 2) "
            f"to {list(expected)} (axes {layout})"
        )
    return f"reshape or re-batch it to {list(expected)} (axes {layout})"


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of one exported head."""

    head: Head
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def check_feed(self, feed: Mapping[str, Any]) -> None:
        """Check names, dtypes and shapes of a feed; report every problem at once."""
        problems = []
        missing = [n for n in self.input_names if n not in feed]
        extra = sorted(set(feed) - set(self.input_names))
        if missing:
            problems.append(f"missing input(s) {missing}")
        if extra:
            problems.append(f"unexpected input(s) {extra}")
        if missing and extra:
            renames = ", ".join(f"{e!r} -> {m!r}" for e, m in zip(extra, missing))
            problems.append(
                f"the inputs are named by the signature: rename the keys ({renames})"
                if len(missing) == len(extra)
                else f"the inputs are named by the signature: use the names {self.input_names}"
            )
        for spec in self.inputs:
            if spec.name in feed:
                try:
                    spec.check(feed[spec.name])
                except SignatureError as exc:
                    problems.append(str(exc))
        if problems:
            expected = ", ".join(f"{s.name}: {s.describe()}" for s in self.inputs)
            raise SignatureError(
                "feed does not match the signature of the "
                f"{self.head!r} head ({expected}): " + "; ".join(problems)
            )

    def check_outputs(self, outputs: Mapping[str, Any]) -> None:
        """Same check for a runner's outputs (used where a backend must honour the contract)."""
        for spec in self.outputs:
            if spec.name not in outputs:
                raise SignatureError(f"output {spec.name!r} missing; got {sorted(outputs)}")
            spec.check(outputs[spec.name], role="output")

    def output(self, name: str) -> TensorSpec:
        """The output spec called ``name`` (KeyError naming the outputs when absent)."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"no output {name!r}; outputs are {self.output_names}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        return cls(
            head=d["head"],
            inputs=tuple(TensorSpec.from_dict(s) for s in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(s) for s in d["outputs"]),
        )


def make_signature(config: ModelConfig, batch: int, head: Head = "object") -> Signature:
    """The signature of ``head`` for a model config and a fixed batch size.

    Object head: ``diffraction`` -> ``amplitude``, ``phase``. Physics head: also ``positions``
    (patch offsets ``(x, y)`` in pixels relative to the group centre) in and ``pred_amplitude``
    (the simulated diffraction amplitude) out.
    """
    if head not in HEADS:
        raise SignatureError(f"unknown head {head!r}; expected one of {list(HEADS)}")
    if not isinstance(batch, int) or batch < 1:
        raise SignatureError(f"batch must be an int >= 1, got {batch!r}")
    n, c, out = config.N, config.C, config.out_channels
    image = "B,C,N,N"
    inputs = [TensorSpec("diffraction", (batch, c, n, n), image)]
    outputs = [
        TensorSpec(AMPLITUDE, (batch, out, n, n), image),
        TensorSpec(PHASE, (batch, out, n, n), image, wraps=True, weighted_by=AMPLITUDE),
    ]
    if head == "physics":
        inputs.append(TensorSpec("positions", (batch, c, 2), "B,C,xy"))
        outputs.append(TensorSpec(PRED_AMPLITUDE, (batch, c, n, n), image))
    return Signature(head=head, inputs=tuple(inputs), outputs=tuple(outputs))


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return type(value).__name__
    text = str(dtype)
    return text.removeprefix("torch.") if text.startswith("torch.") else str(np.dtype(dtype))
