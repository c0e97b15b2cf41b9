"""Typed errors of the parity package, each mapped to an exit code by the CLI."""

from __future__ import annotations

from ptycho_torch.errors import ExitCode, ToolError

__all__ = [
    "EnvironmentUnavailable",
    "ParityError",
    "ReferenceFormatError",
    "StaleReferenceError",
]


class ParityError(ToolError):
    """Base class; exit code 2 (usage or bad input) unless a subclass says otherwise."""


class ReferenceFormatError(ParityError):
    """A reference file is missing, unreadable or not in the documented format."""


class StaleReferenceError(ParityError):
    """The reference was made from other weights or other inputs than the artifacts."""

    exit_code = ExitCode.STALE


class EnvironmentUnavailable(ParityError):
    """A requested device or execution provider is not available (never a pass)."""

    exit_code = ExitCode.ENVIRONMENT
