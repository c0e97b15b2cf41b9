"""The one command-line edge: typed errors to exit codes, OS refusals, missing packages, signals.

Every command of the command tree (:mod:`ptychopinn`) runs behind :func:`run_cli`, and every
``python -m`` form hands over to the tree through :func:`launch`. Torch-free: it imports only the
standard library and :mod:`ptycho_torch.errors`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from ptycho_torch.errors import (
    ExitCode,
    PtychoError,
    ToolError,
    describe_os_error,
    is_refused_write,
)

__all__ = [
    "INSTALL_HINTS",
    "ExitCode",
    "Terminated",
    "UsageError",
    "call",
    "launch",
    "missing_package",
    "run_cli",
]


class UsageError(PtychoError):
    """An option value the command cannot use (e.g. an invalid configuration)."""


class Terminated(BaseException):
    """SIGTERM arrived (CI runners and ``timeout`` send it): unwinds like Ctrl-C, so every
    ``finally`` and ``except BaseException`` clean-up (temporary build folders) runs."""


# Signals received during the current run_cli body. A library may catch our exception and
# raise its own (torch.onnx wraps it in "Failed to export the model"): whatever then reaches
# the edge is reported as the signal.
_signals: list[int] = []


def _on_sigterm(signum: int, frame: object) -> None:
    _signals.append(signum)
    raise Terminated()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _signals.append(signum)
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt


# Optional packages by top-level import name: what they are and the line that installs them.
# The host environment (README, "Inference hosts") has none of torch, lightning, onnx.
_MAIN_INSTALL = "pip install -c constraints.txt -e . (the main environment)"
INSTALL_HINTS: dict[str, str] = {
    "torch": f"PyTorch (torch) is not installed; this command needs it: {_MAIN_INSTALL}",
    "lightning": f"Lightning is not installed; this command needs it: {_MAIN_INSTALL}",
    "pytorch_lightning": f"Lightning is not installed; this command needs it: {_MAIN_INSTALL}",
    "onnx": f"onnx is not installed; this command needs it: {_MAIN_INSTALL}",
    "onnxscript": f"onnxscript is not installed; this command needs it: {_MAIN_INSTALL}",
    "onnxruntime": "ONNX Runtime is not installed; install onnxruntime-gpu (Linux x86_64) or "
    "onnxruntime: pip install -c constraints.txt onnxruntime-gpu",
    "h5py": f"h5py is not installed; this command needs it: {_MAIN_INSTALL}",
    "jinja2": f"jinja2 is not installed; this command needs it: {_MAIN_INSTALL}",
    "matplotlib": "matplotlib is not installed; pip install -c constraints.txt matplotlib",
    "tensorflow": "TensorFlow is not installed; install the 'tf' extra: pip install -c "
    "constraints.txt -e '.[tf]'",
    "keras": "Keras is not installed; install the 'tf' extra: pip install -c constraints.txt "
    "-e '.[tf]'",
    "ptychodus": "Ptychodus is not installed; install the 'ptychodus' extra: pip install -c "
    "constraints.txt -e '.[ptychodus]' (on a host: pip install ptychodus==1.7.0)",
    "pytriton": "PyTriton is not installed; serving needs a Python 3.12 environment with the "
    "'serve' packages (PyTriton 0.7.0 needs numpy<2): python3.12 -m venv serve-env && "
    "serve-env/bin/pip install -r serve-requirements.txt && serve-env/bin/pip install --no-deps "
    ". (docs/serving.md)",
    "tritonclient": "the Triton client is not installed; pip install 'tritonclient[http,grpc]' "
    "(in the serving environment: pip install -r serve-requirements.txt, docs/serving.md)",
    "grpc": "the Triton client's gRPC part (grpcio) is not installed; pip install "
    "'tritonclient[http,grpc]' (the 'serve' extra)",
    "geventhttpclient": "the Triton client's HTTP part is not installed; pip install "
    "'tritonclient[http,grpc]' (the 'serve' extra)",
}


def missing_package(exc: BaseException) -> str | None:
    """The one-line advice for an optional package that is not installed, or None when ``exc``
    is not a missing optional package (a missing module of our own is a bug)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return INSTALL_HINTS.get(exc.name.split(".")[0])


def call(target: str, *args: Any, **kwargs: Any) -> int:
    """Import ``module:function`` and return what it returns when called with the arguments
    given: how a command hands over to another module, so that a package missing at import time
    is exit 3 with its install line, not a traceback."""
    import importlib

    module, _, function = target.partition(":")
    try:
        entry = getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        advice = missing_package(exc)
        if advice is None:
            raise
        return _fail(advice, ExitCode.ENVIRONMENT)
    return int(entry(*args, **kwargs) or 0)


def launch(target: str, **kwargs: Any) -> NoReturn:
    """The body of every ``python -m`` forwarder: :func:`call` ``target`` and exit with it."""
    sys.exit(call(target, **kwargs))


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a CLI body; a :class:`ToolError` becomes one ``error:`` line and its exit code.

    Also mapped: an OS error about the user's paths or machine (not a folder, is a file, not
    writable, no space, a file-size limit; torch's errno-less form of the last two) is 2 with
    the path and the reason; a missing optional package is 3 with its install line; Ctrl-C is
    130 and SIGTERM 143, whatever exception a library turned them into. Anything else is a bug:
    exit 70 with one line, the traceback in a log file (never exit 1, a parity failure).

    Args:
        body: the command; returns an exit code or None for success. ``SystemExit`` (argparse's
            usage errors and ``--help``) passes through unchanged.
    """
    previous = _install_handlers()
    del _signals[:]
    try:
        code = body()
    except BaseException as exc:  # noqa: BLE001 - every outcome becomes one line and a code
        return _exit_for(exc)
    finally:
        _restore_handlers(previous)
    return int(ExitCode.PASS if code is None else code)


def _exit_for(exc: BaseException) -> int:
    if _signals or isinstance(exc, KeyboardInterrupt | Terminated):
        if (_signals and _signals[0] == signal.SIGTERM) or isinstance(exc, Terminated):
            return _fail("terminated (SIGTERM); nothing was published", ExitCode.TERMINATED)
        return _fail("interrupted", ExitCode.INTERRUPTED)
    if isinstance(exc, ToolError):
        return _fail(str(exc), exc.exit_code)
    if isinstance(exc, FileNotFoundError):
        return _fail(describe_os_error(exc) or str(exc), ExitCode.USAGE)
    if isinstance(exc, OSError) and (reason := describe_os_error(exc)):
        return _fail(reason, ExitCode.USAGE)
    if is_refused_write(exc):
        return _fail(
            "a write was refused by the operating system (no space left, a disk quota or a "
            f"file-size limit such as ulimit -f): {str(exc).splitlines()[0][:200]}; free some "
            "space or raise the limit, then run again",
            ExitCode.USAGE,
        )
    if advice := missing_package(exc):
        return _fail(advice, ExitCode.ENVIRONMENT)
    if not isinstance(exc, Exception):  # SystemExit, GeneratorExit: not ours to translate
        raise exc
    return _internal(exc)


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


def _install_handlers() -> tuple[Any, Any] | None:
    """Record SIGTERM and Ctrl-C (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return (signal.signal(signal.SIGTERM, _on_sigterm), signal.signal(signal.SIGINT, _on_sigint))


def _restore_handlers(previous: tuple[Any, Any] | None) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return int(code)
