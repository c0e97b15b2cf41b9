"""Typed errors of ptycho_torch; CLIs turn them into a message and exit code 2."""

from __future__ import annotations

__all__ = ["CheckpointError", "DataError", "PtychoError"]


class PtychoError(Exception):
    """Base class: a user-facing problem (bad file, bad option), not a bug."""


class DataError(PtychoError):
    """An NPZ file breaks the data contract (missing key, wrong dtype/shape, NaN, pickle)."""


class CheckpointError(PtychoError):
    """A checkpoint cannot be read or does not describe a PtychoPINN model."""
