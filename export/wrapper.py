"""Modules that take exactly the signature's tensors, check them, then call the model.

The check turns the cryptic ``Input type (double) and bias type (float) should be the same``
into ``input 'diffraction': expected float32[4, 1, 64, 64], got float64[4, 1, 64, 64]``.
It is scriptable, so the TorchScript artifact carries it. In traced exports (ONNX,
torch.export) dtypes and shapes are static, so the check folds away and the artifact's own
typed inputs enforce the contract.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from export.signature import Signature
from ptycho_torch.model import PtychoPINN

__all__ = ["ObjectHead", "PhysicsHead", "wrap"]


def _dtype_name(dtype: torch.dtype) -> str:
    # TorchScript has no str(dtype); name the dtypes users actually feed by mistake.
    if dtype == torch.float32:
        return "float32"
    if dtype == torch.float64:
        return "float64"
    if dtype == torch.float16:
        return "float16"
    if dtype == torch.bfloat16:
        return "bfloat16"
    if dtype == torch.int64:
        return "int64"
    if dtype == torch.int32:
        return "int32"
    if dtype == torch.uint8:
        return "uint8"
    if dtype == torch.complex64:
        return "complex64"
    if dtype == torch.complex128:
        return "complex128"
    if dtype == torch.bool:
        return "bool"
    return "non-float32"


def _shape_text(shape: list[int]) -> str:
    return "[" + ", ".join([str(d) for d in shape]) + "]"


def check_input(x: Tensor, name: str, shape: list[int], layout: str) -> None:
    """Raise ``ValueError`` naming the input, the expected ``float32[...]`` and what came."""
    found = list(x.shape)
    if x.dtype != torch.float32 or found != shape:
        raise ValueError(
            "input '"
            + name
            + "': expected float32"
            + _shape_text(shape)
            + " ("
            + layout
            + "), got "
            + _dtype_name(x.dtype)
            + _shape_text(found)
            + "; cast with .float() / .astype(np.float32) and batch to the exported size"
        )


class ObjectHead(nn.Module):
    """``diffraction -> (amplitude, phase)``, the head inference hosts run."""

    __constants__ = ["diffraction_shape", "diffraction_layout"]

    def __init__(self, model: PtychoPINN, signature: Signature) -> None:
        super().__init__()
        self.model = model
        spec = signature.inputs[0]
        self.diffraction_shape = list(spec.shape)
        self.diffraction_layout = spec.layout

    def forward(self, diffraction: Tensor) -> tuple[Tensor, Tensor]:
        check_input(diffraction, "diffraction", self.diffraction_shape, self.diffraction_layout)
        return self.model.predict(diffraction)


class PhysicsHead(nn.Module):
    """``(diffraction, positions) -> (amplitude, phase, pred_amplitude)``, probe baked in."""

    __constants__ = [
        "diffraction_shape",
        "diffraction_layout",
        "positions_shape",
        "positions_layout",
    ]

    def __init__(self, model: PtychoPINN, signature: Signature) -> None:
        super().__init__()
        self.model = model
        diffraction, positions = signature.inputs
        self.diffraction_shape = list(diffraction.shape)
        self.diffraction_layout = diffraction.layout
        self.positions_shape = list(positions.shape)
        self.positions_layout = positions.layout

    def forward(self, diffraction: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_input(diffraction, "diffraction", self.diffraction_shape, self.diffraction_layout)
        check_input(positions, "positions", self.positions_shape, self.positions_layout)
        return self.model(diffraction, positions)


def wrap(model: PtychoPINN, signature: Signature) -> nn.Module:
    """The wrapper for ``signature.head``, in eval mode."""
    head = (
        ObjectHead(model, signature)
        if signature.head == "object"
        else PhysicsHead(model, signature)
    )
    return head.eval()
