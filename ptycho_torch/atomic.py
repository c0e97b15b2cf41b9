"""Write a file, or a whole folder, so that readers see the old content or the new, never half
of it. Torch-free."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import glob
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

__all__ = [
    "atomic_write",
    "process_alive",
    "rename_exchange",
    "replace_folder",
    "unwritable_file",
]

T = TypeVar("T")

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
# what rename_exchange raises where the kernel or filesystem cannot exchange (not a real failure)
_CANNOT_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(binary_file)`` into a temporary file beside it, then
    rename it over ``path``; on any failure the temporary file is removed and ``path`` is
    untouched (a folder that cannot take the temporary file is the ``OSError``'s filename).
    The file is 0644: these are artifacts, references and reports meant to be read
    by other users, CI and hosts (``mkstemp`` alone would leave 0600)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # named by the folder the user gave, not by a temporary file's name
        raise OSError(exc.errno, exc.strerror, str(path.parent)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable_file(path: Path) -> str | None:
    """Why ``path`` cannot be a file that a command writes when its work is done (it is a
    folder; its folder is missing, not a folder, or not writable by this user), or None: checked
    before the work, so that minutes of it are not lost to a bad path."""
    if path.is_dir():
        return "is a folder; give the path of a file to write"
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        return f"its folder {parent} {what}; create it or choose another"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"its folder {parent} is not writable; choose another"
    return None


def replace_folder(out: Path, write: Callable[[Path], T]) -> T:
    """Write a folder with ``write(tmp)`` into a temporary sibling of ``out``, then swap it in.

    A previous ``out`` folder is exchanged with the new one in one
    ``renameat2(RENAME_EXCHANGE)``, so ``out`` always holds the previous complete folder or the
    new one; where the kernel or filesystem cannot exchange, the previous folder is renamed
    aside first (``out`` is then absent for an instant, never mixed). The previous folder is
    deleted afterwards: callers first make sure it holds only files they wrote. A failure or
    Ctrl-C while writing removes the temporary folder and leaves ``out`` untouched; what a
    killed writer left (``HOST-PID`` in the name, the process gone) goes on the next call.
    ``out`` may be a link to a folder: the folder it names is replaced, the link kept.

    Returns:
        What ``write`` returned (paths in it lie under ``tmp``, now ``out``).
    """
    out = out.resolve() if out.is_symlink() else out
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tag = f"{socket.gethostname()}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{tag}-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; these folders are meant to be shared
        result = write(tmp)
        previous = _swap_in(tmp, out, tag)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return result


def _swap_in(tmp: Path, out: Path, tag: str) -> Path | None:
    """Put ``tmp`` at ``out``; return where the previous ``out`` folder now is (None: none)."""
    if not out.is_dir():
        os.rename(tmp, out)  # a file at ``out`` fails here (ENOTDIR): callers refuse it first
        return None
    try:
        rename_exchange(tmp, out)
        return tmp  # ``tmp`` now names the previous folder
    except OSError as exc:
        if exc.errno not in _CANNOT_EXCHANGE:
            raise
    aside = out.parent / f".{out.name}.old-{tag}-{secrets.token_hex(4)}"
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise
    return aside


def rename_exchange(a: Path, b: Path) -> None:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises:
        OSError: ``EINVAL``/``ENOSYS``/``EOPNOTSUPP`` where the kernel, C library or
            filesystem cannot exchange; otherwise why the swap failed.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _remove_leftovers(out: Path) -> None:
    """Temporary and set-aside folders of killed :func:`replace_folder` calls on this host."""
    host = socket.gethostname()
    for kind in ("tmp", "old"):
        prefix = f".{out.name}.{kind}-{host}-"
        for path in sorted(out.parent.glob(f"{glob.escape(prefix)}*")):
            pid = path.name[len(prefix) :].split("-", 1)[0]
            if not pid.isdigit() or process_alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                if kind == "old" and not out.exists() and not out.is_symlink():
                    os.rename(path, out)  # killed between its two renames: put it back
                else:
                    shutil.rmtree(path)
