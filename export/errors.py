"""Typed errors of the export package. CLIs map them to exit codes (ARCHITECTURE.md)."""

from __future__ import annotations

__all__ = ["BuildError", "DtypeContractError", "ExportError", "SignatureError"]


class ExportError(Exception):
    """Base class of export failures that are the user's to fix (exit code 2)."""


class SignatureError(ExportError, ValueError):
    """A feed does not match the fixed signature (name, dtype or shape)."""


class DtypeContractError(ExportError):
    """An exported artifact breaks the float32 contract (names the node or tensor)."""


class BuildError(ExportError):
    """A build step failed; the previous artifacts were left untouched."""
