"""The one exit-code policy and error base of every command line (torch-free, imports nothing).

Exit codes (README, "Exit codes"): 0 pass, 1 parity failure, 2 usage or bad input,
3 environment (a requested device, provider or framework is unavailable), 4 stale or changed
(the reference belongs to other weights/inputs, or an artifact no longer matches its manifest).
A :class:`ToolError` is the user's to fix: ``run_cli`` prints one ``error:`` line and exits with
its ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CheckpointError",
    "DataError",
    "ExitCode",
    "PtychoError",
    "ToolError",
]


class ExitCode(IntEnum):
    """Exit codes shared by every CLI."""

    PASS = 0
    PARITY_FAILURE = 1
    USAGE = 2
    ENVIRONMENT = 3
    STALE = 4
    INTERNAL = 70  # a bug (EX_SOFTWARE): one line, the traceback in a log file
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + 15), what CI runners and `timeout` send


class ToolError(Exception):
    """Base of every user-facing error; carries the exit code it maps to.

    Subclasses set ``exit_code``; an instance may override it (``ToolError(msg, exit_code=3)``).
    """

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = ExitCode(exit_code)


class PtychoError(ToolError):
    """Base class of ptycho_torch: a user-facing problem (bad file, bad option), not a bug."""


class DataError(PtychoError):
    """An NPZ file breaks the data contract (missing key, wrong dtype/shape, NaN, pickle)."""


class CheckpointError(PtychoError):
    """A checkpoint cannot be read or does not describe a PtychoPINN model."""
