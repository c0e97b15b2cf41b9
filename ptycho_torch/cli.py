"""The one command-line edge: logging setup, typed errors to exit codes, Ctrl-C.

Every ``python -m`` entry point of the three packages (and the torch-free host) runs its body
through :func:`run_cli`. Torch-free: it imports only the standard library and
:mod:`ptycho_torch.errors`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ptycho_torch.errors import ExitCode, PtychoError, ToolError

__all__ = ["ExitCode", "Terminated", "UsageError", "run_cli"]


class UsageError(PtychoError):
    """An option value the command cannot use (e.g. an invalid configuration)."""


class Terminated(BaseException):
    """SIGTERM arrived (CI runners and ``timeout`` send it): unwinds like Ctrl-C, so every
    ``finally`` and ``except BaseException`` clean-up (temporary build folders) runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run_cli(body: Callable[[], int | None], *, configure_logging: bool = True) -> int:
    """Run a CLI body; a :class:`ToolError` becomes one ``error:`` line and its exit code.

    Also mapped: a missing file (2), TensorFlow/Keras not installed (3, with the install hint),
    Ctrl-C (130), SIGTERM (143). Anything else is a bug: exit 70 with one line, the traceback
    in a log file (never exit 1, which means a parity failure).

    Args:
        body: the command; returns an exit code or None for success.
        configure_logging: set up ``levelname name: message`` logging on stderr first (callers
            with their own logging setup pass False).
    """
    if configure_logging:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    previous = _install_sigterm()
    try:
        code = body()
    except ToolError as exc:
        return _fail(str(exc), exc.exit_code)
    except FileNotFoundError as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("tensorflow", "keras"):
            return _fail(
                f"{exc.name} is not installed; install the 'tf' extra: pip install -e '.[tf]'",
                ExitCode.ENVIRONMENT,
            )
        return _internal(exc)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.INTERRUPTED)
    except Terminated:
        return _fail("terminated (SIGTERM); nothing was published", ExitCode.TERMINATED)
    except Exception as exc:  # noqa: BLE001 - a bug: never exit 1, which means a parity failure
        return _internal(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(ExitCode.PASS if code is None else code)


def _internal(exc: BaseException) -> int:
    log = _write_traceback()
    return _fail(
        f"internal error (a bug, not your input): {type(exc).__name__}: {exc}; "
        f"traceback in {log}; please report it with that file",
        ExitCode.INTERNAL,
    )


def _write_traceback() -> str:
    """Save the current exception's traceback to a log file; returns its path."""
    import tempfile
    import time
    import traceback

    fd, path = tempfile.mkstemp(prefix=f"ptychopinn-crash-{int(time.time())}-", suffix=".log")
    with open(fd, "w", encoding="utf-8") as f:
        f.write(" ".join(sys.argv) + "\n\n")
        traceback.print_exc(file=f)
    return path


def _install_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` (main thread only); returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return int(code)
