"""Typed errors of the parity package, each mapped to an exit code by the CLI.

A reference that is unreadable or stale is :class:`export.errors.ReferenceFormatError` or
:class:`export.errors.StaleReferenceError`, the host's ``export verify`` raising them too.
"""

from __future__ import annotations

from ptycho_torch.errors import ExitCode, ToolError

__all__ = [
    "BisectError",
    "EnvironmentUnavailable",
    "ParityError",
    "ReportFolderError",
    "RunnerNotActiveError",
    "WeightsMismatchError",
]


class ParityError(ToolError):
    """Base class; exit code 2 (usage or bad input) unless a subclass says otherwise."""


class BisectError(ParityError):
    """Bad bisect request: a pair, sample or layer bisect cannot use (exit 2)."""


class ReportFolderError(ParityError):
    """The report folder cannot take a report: it is a file, cannot be written, or holds files
    this tool did not write (a report replaces the whole folder). Exit 2; nothing was written."""


class WeightsMismatchError(ParityError):
    """The checkpoint to run eager PyTorch from does not hold the weights the artifacts were
    built from (exit 4, like an artifact changed after the build)."""

    exit_code = ExitCode.STALE


class EnvironmentUnavailable(ParityError):
    """A requested device or execution provider is not available (never a pass)."""

    exit_code = ExitCode.ENVIRONMENT


class RunnerNotActiveError(RuntimeError):
    """``infer`` on a runner that was not activated: a bug in the caller, not the user's input
    (so not a :class:`ParityError`; the CLI reports it as an internal error, exit 70)."""
