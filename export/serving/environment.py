"""What PyTriton 0.7.0 needs of the process that starts it, checked before anything starts.

Its Triton server runs the Python model through a backend stub built per Python version; the
stub loads ``libpython3.X.so.1.0`` through the dynamic loader, so that library's folder must be
on ``LD_LIBRARY_PATH`` of the server process, which PyTriton starts with this process's
environment. Without it the model never loads and clients wait until they time out; here the
folder is put on the variable before the server starts (:func:`prepare_environment`), and a
Python that cannot work is one clear error instead. On Python 3.11 the stub fails to load a model
(``'_thread.RLock' object has no attribute '_recursion_count'``): 3.12 is the version tried.
Torch-free, standard library only.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from export.errors import ServeEnvironmentError

__all__ = ["SERVE_PYTHON", "prepare_environment", "python_library"]

SERVE_PYTHON = (3, 12)  # the Python PyTriton 0.7.0's backend stub serves models with here
_INSTALL = (
    "make a Python 3.12 environment for serving: python3.12 -m venv serve-env && "
    "serve-env/bin/pip install -r serve-requirements.txt && serve-env/bin/pip install "
    "--no-deps . (docs/serving.md)"
)


def python_library() -> Path:
    """This interpreter's shared ``libpython`` (what the backend stub loads).

    Raises:
        ServeEnvironmentError: a Python other than 3.12, or one built without the shared library.
    """
    version = ".".join(map(str, sys.version_info[:2]))
    if sys.version_info[:2] != SERVE_PYTHON:
        raise ServeEnvironmentError(
            f"serving needs Python 3.12 (PyTriton 0.7.0's backend stub fails on others), this "
            f"is Python {version} ({sys.executable}): {_INSTALL}"
        )
    folder = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or f"libpython{version}.so.1.0"
    library = Path(folder) / name
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not library.is_file():
        raise ServeEnvironmentError(
            f"Python {version} at {sys.executable} has no shared library {library} (built "
            "without --enable-shared), which PyTriton's backend stub loads: use a Python 3.12 "
            f"built with it (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared); {_INSTALL}"
        )
    return library


def prepare_environment() -> str | None:
    """Put this Python's library folder on ``LD_LIBRARY_PATH`` for the server PyTriton starts.

    Returns:
        The folder when it was added, None when it was there already.

    Raises:
        ServeEnvironmentError: as :func:`python_library`.
    """
    folder = str(python_library().parent)
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if folder in current.split(os.pathsep):
        return None
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (folder, current) if p)
    return folder
