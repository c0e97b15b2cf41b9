"""Typed errors of the TensorFlow importer; the CLI turns each into one ``error:`` line, exit 2."""

from __future__ import annotations

from ptycho_torch.errors import PtychoError

__all__ = [
    "GraphStructureError",
    "ImportTFError",
    "MissingValueError",
    "UnsafePickleError",
    "UnsupportedModelError",
    "WeightMismatchError",
]


class ImportTFError(PtychoError):
    """The original's files cannot be turned into a PtychoPINN checkpoint."""


class UnsafePickleError(ImportTFError):
    """A pickle references a global that is not plain data; nothing of it was executed."""


class MissingValueError(ImportTFError):
    """A value the model needs is in none of the given files or flags."""


class UnsupportedModelError(ImportTFError):
    """The original was trained with options this port does not implement."""


class WeightMismatchError(ImportTFError):
    """The original's convolutions do not map one-to-one, by role and shape, onto the model."""


class GraphStructureError(ImportTFError):
    """``model.keras``'s graph is not the original PtychoPINN network this port implements."""
