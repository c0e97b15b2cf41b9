"""Typed errors of the TensorFlow twin (exit code 2: bad input, unless a subclass says otherwise)."""

from __future__ import annotations

from parity.errors import ParityError

__all__ = ["TwinError", "WeightTransferError"]


class TwinError(ParityError):
    """The twin cannot run as asked (wrong Keras backend, bad inputs file, non-float32 output)."""


class WeightTransferError(TwinError):
    """Weights do not fit the twin or the PyTorch model: names missing, unexpected or misshapen."""
