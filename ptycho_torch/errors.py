"""The one exit-code policy and error base of every command line (torch-free, imports nothing).

Exit codes (README, "Exit codes"): 0 pass, 1 parity failure, 2 usage or bad input,
3 environment (a requested device, provider or framework is unavailable), 4 stale or changed
(the reference belongs to other weights/inputs, or an artifact no longer matches its manifest).
A :class:`ToolError` is the user's to fix: ``run_cli`` prints one ``error:`` line and exits with
its ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path

__all__ = [
    "CheckpointError",
    "DataError",
    "ExitCode",
    "PtychoError",
    "ToolError",
    "WriteError",
    "describe_os_error",
    "is_refused_write",
    "writing",
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


class WriteError(PtychoError):
    """The operating system refused to write a file (disk full, file-size limit, permissions)."""


# OS errors that are about the user's paths or machine, never a bug here: what to tell them.
_OS_ADVICE = {
    errno.ENOENT: "it does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; expected a file",
    errno.EEXIST: "it already exists",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.EACCES: "permission denied; choose a place you can write, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a place you can write",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOSPC: "no space left on the device; free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded; free some space or write somewhere else",
    errno.EFBIG: "file too large: a file-size limit (ulimit -f) or the file system's limit "
    "was reached; raise the limit or write somewhere else",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.ENXIO: "no such device",
    errno.EXDEV: "it is on another file system",
    errno.EBUSY: "the file or folder is busy",
    errno.ETXTBSY: "the file is busy",
    errno.EIO: "input/output error from the device",
}


def describe_os_error(exc: OSError) -> str | None:
    """One line for an OS error about the user's paths or machine (the path and the reason), or
    None when the error is not one of those (then it is a bug here)."""
    if exc.errno not in _OS_ADVICE:
        return None
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    where = f"{paths}: " if paths else ""
    return f"{where}{exc.strerror or 'OS error'} ({_OS_ADVICE[exc.errno]})"


# torch's C++ archive writer (caffe2/serialize/inline_container.cc) reports a refused write as a
# RuntimeError without errno or path ("[enforce fail at inline_container.cc:...] . unexpected
# pos ...", "PytorchStreamWriter failed writing file ...", "file write failed").
_TORCH_WRITE_FAILURES = ("inline_container.cc", "PytorchStreamWriter failed", "file write failed")


def is_refused_write(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's archive writer failing because the OS refused a write."""
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _TORCH_WRITE_FAILURES)


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Around a write to ``path``: an OS refusal (also torch's errno-less form) becomes one
    :class:`WriteError` naming the path and the reason; the caller's clean-up still runs."""
    try:
        yield
    except OSError as exc:
        reason = describe_os_error(exc)
        if reason is None:
            raise
        raise WriteError(f"cannot write {path}: {reason}") from None
    except RuntimeError as exc:
        if not is_refused_write(exc):
            raise
        raise WriteError(
            f"cannot write {path}: the operating system refused the write (no space left, a "
            "disk quota or a file-size limit such as ulimit -f); free some space or raise the "
            "limit, then run again"
        ) from None
