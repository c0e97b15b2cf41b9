"""The model a Triton server serves, declared once: name, tensors, data types, dims, batching.

Both ways this project puts the ONNX model behind Triton's protocol read :class:`TritonModel`:

* ``python -m export triton`` writes ``config.pbtxt`` for a full Triton Inference Server with
  the ONNX Runtime backend (:meth:`TritonModel.config_pbtxt`). That backend runs ``model.onnx``
  as it is, and its batch ``B`` is fixed, so the config says ``max_batch_size: 0`` and every
  tensor's dims start with ``B`` (Triton's ONNX Runtime backend batches only models whose first
  dim is dynamic);
* ``python -m export serve`` binds the same name, tensors and data types in PyTriton
  (:mod:`export.serving.server`), with Triton batching on (:class:`ServedBatching`):
  ``max_batch_size`` and the per-sample dims, dynamic batching with its queue delay and the
  multiples of ``B`` as preferred sizes, the callable splitting and padding to ``B``
  (:mod:`export.fixed_batch`).

A request of ``B`` samples (``[B, *dims]``, float32) is valid for both, which is what the
project's client sends (:class:`export.serving.client.TritonRunner`); the served model also
takes any ``1..max_batch_size`` samples. Torch-free; standard library and NumPy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from export.errors import ExportError
from export.signature import Signature

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ServedBatching",
    "TritonModel",
    "TritonTensor",
    "check_model_name",
]

DEFAULT_MODEL_NAME = "ptychopinn"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no leading dot: never "." or ".."
# signature dtype -> (Triton config data type, wire datatype of the HTTP/gRPC protocol)
_TRITON_TYPES = {"float32": ("TYPE_FP32", "FP32")}


def check_model_name(name: str) -> str:
    """``name`` if Triton and a model repository's folder can both hold it.

    Raises:
        ExportError: (exit 2) any other character, or a leading dot.
    """
    if not _NAME.match(name):
        raise ExportError(
            f"--name {name!r}: use letters, digits, '_', '-' or '.', not starting with '.'"
        )
    return name


@dataclass(frozen=True)
class TritonTensor:
    """One input or output: its name, its signature dtype and one sample's dims."""

    name: str
    dims: tuple[int, ...]  # one sample, without the batch axis: (C, N, N)
    dtype: str = "float32"  # the signature's; the only one an artifact carries

    @property
    def config_type(self) -> str:
        """``TYPE_FP32``: the data type in ``config.pbtxt``."""
        return _TRITON_TYPES[self.dtype][0]

    @property
    def wire_type(self) -> str:
        """``FP32``: the datatype a client names in a request (``InferInput``)."""
        return _TRITON_TYPES[self.dtype][1]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class ServedBatching:
    """How the served model batches: Triton's dynamic batcher in front of the fixed batch.

    Attributes:
        max_batch_size: the most samples one request, and one dynamic batch, may hold.
        queue_delay_us: how long the batcher holds a request for others to join it.
    """

    max_batch_size: int
    queue_delay_us: int

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.queue_delay_us < 0:
            raise ValueError(f"queue_delay_us must be >= 0, got {self.queue_delay_us}")


@dataclass(frozen=True)
class TritonModel:
    """The one description both Triton configurations are written from.

    Attributes:
        name: the model name clients address.
        batch: the artifact's fixed batch ``B`` (the leading dim of every signature tensor).
        inputs, outputs: in the signature's order.
    """

    name: str
    batch: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]

    @classmethod
    def from_signature(cls, name: str, signature: Signature) -> TritonModel:
        """The model of an artifact's signature.

        Raises:
            ExportError: (exit 2) a bad name, a tensor that is not float32, or tensors that do
                not share one leading batch dim.
        """
        check_model_name(name)
        specs = (*signature.inputs, *signature.outputs)
        for spec in specs:
            if spec.dtype not in _TRITON_TYPES:
                raise ExportError(f"{spec.name!r} is {spec.dtype}; the signature must be float32")
        batches = {spec.shape[0] for spec in specs}
        if len(batches) != 1:
            raise ExportError(
                f"the signature's tensors do not share one batch dim: "
                f"{ {spec.name: spec.shape for spec in specs} }"
            )

        def tensors(group: tuple) -> tuple[TritonTensor, ...]:
            return tuple(TritonTensor(s.name, tuple(s.shape[1:]), s.dtype) for s in group)

        return cls(name, batches.pop(), tensors(signature.inputs), tensors(signature.outputs))

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def preferred_batch_sizes(self, batching: ServedBatching) -> list[int]:
        """The dynamic batcher's preferred sizes: the multiples of ``B`` up to the maximum
        (whole fixed batches, no padding), or the maximum itself when it is below ``B``."""
        sizes = list(range(self.batch, batching.max_batch_size + 1, self.batch))
        return sizes or [batching.max_batch_size]

    def config_pbtxt(self) -> str:
        """``config.pbtxt`` for the ONNX Runtime backend: ``max_batch_size: 0`` and each
        tensor's dims with the fixed batch first, as ``model.onnx`` declares them."""

        def block(kind: str, tensors: tuple[TritonTensor, ...]) -> str:
            entries = [
                f'  {{\n    name: "{t.name}"\n    data_type: {t.config_type}\n'
                f"    dims: [ {', '.join(str(d) for d in (self.batch, *t.dims))} ]\n  }}"
                for t in tensors
            ]
            return f"{kind} [\n" + ",\n".join(entries) + "\n]"

        return "\n".join(
            [
                f'name: "{self.name}"',
                'backend: "onnxruntime"',
                "max_batch_size: 0",
                block("input", self.inputs),
                block("output", self.outputs),
                "",
            ]
        )
