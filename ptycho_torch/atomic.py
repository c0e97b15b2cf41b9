"""Write a file so that readers see the old content or the new, never half of it. Torch-free."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(binary_file)`` into a temporary file beside it, then
    rename it over ``path``; on any failure the temporary file is removed and ``path`` is
    untouched. The file is 0644: these are artifacts, references and reports meant to be read
    by other users, CI and hosts (``mkstemp`` alone would leave 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
