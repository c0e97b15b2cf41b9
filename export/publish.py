"""Publishing an artifacts folder with no loss window.

``--out`` is a symbolic link to one complete build in ``.NAME.versions/`` beside it. A build
writes a temporary folder there, renames it to its version name, and switches the link with one
``rename(2)`` of a fresh link over the old one: at every instant ``--out`` resolves to the
previous or the new complete artifact set, whatever kills the process. The current version and
``keep`` previous ones are kept; older ones are deleted unless they hold files this tool did not
write.

An ``--out`` that is still a plain folder (built before versioning, or a user's folder replaced
with ``--force``) is exchanged with the link atomically (``renameat2(RENAME_EXCHANGE)``) and
kept as a version; where the kernel or filesystem cannot exchange, or cannot hold a symlink, the
build fails with a clear error instead of publishing unsafely.

Everything here runs under an advisory lock on ``.NAME.lock`` beside ``--out``: one build at a
time, the second fails at once. Leftovers of killed builds (temporary folders and links whose
process is gone, recorded as ``HOST-PID`` in their names) are removed by the next build.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from export.errors import BuildError, ExportError, ManifestError
from export.manifest import read_manifest
from ptycho_torch.atomic import process_alive, rename_exchange

__all__ = [
    "DEFAULT_KEEP",
    "check_out",
    "exclusive",
    "make_build_dir",
    "out_path",
    "publish",
    "recover_leftovers",
    "versions_dir",
]

log = logging.getLogger(__name__)

DEFAULT_KEEP = 2  # previous versions kept besides the current one


def out_path(out: str | Path) -> Path:
    """Absolute ``--out`` without resolving its last component (it is a link we replace)."""
    out = Path(out)
    return out.parent.resolve() / out.name


def versions_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.versions"


def _host_pid() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def check_out(out: Path, used: Iterable[tuple[str, Path]], force: bool) -> None:
    """Refuse an ``--out`` that would hide or lose what is not ours.

    Ours: the files a folder's manifest lists, ``manifest.json`` and ``report/``. A folder
    with anything else needs ``--force`` (it is then kept as a version, never deleted). The
    build's own inputs (``used``: checkpoint, inputs, reference) inside ``--out`` are refused
    even with ``--force``.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() and not out.exists():
        return  # a dangling link: nothing to keep, replaced by the new one
    if not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder; choose another --out")
    target = out.resolve()
    inside = [f"{flag} {path}" for flag, path in used if target in Path(path).resolve().parents]
    if inside:
        raise ExportError(
            f"{', '.join(inside)} lies inside --out {out}, which the build replaces; "
            "move it out of that folder or choose another --out"
        )
    foreign = _foreign_entries(target)
    if foreign and not force:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ExportError(
            f"--out {out} holds files that are not build artifacts ({shown}); choose another "
            "folder, move them, or pass --force (the folder is then kept, not deleted)"
        )


def _foreign_entries(folder: Path) -> list[str]:
    ours = {"manifest.json", "report"}
    with contextlib.suppress(ManifestError):  # unreadable: nothing else counts as ours
        ours.update(read_manifest(folder, verify=False).files)
    return sorted(p.name for p in folder.iterdir() if p.name not in ours)


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One build at a time into ``out``: an advisory lock on ``.NAME.lock`` beside it.

    A second build fails at once with a clear message rather than waiting (a CI job that waits
    silently looks hung); the lock goes with the process, however it ends.
    """
    lock_path = out.parent / f".{out.name}.lock"
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(
                f"another build into {out} is running (lock {lock_path} is held); wait for it "
                "to finish or choose another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_build_dir(out: Path) -> Path:
    """A fresh temporary folder for one build, on the same filesystem as the versions."""
    versions = versions_dir(out)
    versions.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".building-{_host_pid()}-", dir=versions))
    tmp.chmod(0o755)  # mkdtemp makes it private; artifacts are meant to be shared
    return tmp


def publish(tmp: Path, out: Path, keep: int = DEFAULT_KEEP, protect: Iterable[Path] = ()) -> Path:
    """Make the complete build in ``tmp`` what ``out`` resolves to; return its version folder.

    Args:
        tmp: a folder from :func:`make_build_dir`, complete (manifest written last).
        out: the ``--out`` path (see :func:`out_path`).
        keep: previous versions kept besides the new one.
        protect: paths this build read (its checkpoint, inputs): a version holding one is kept.
    """
    versions = versions_dir(out)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    version = versions / f"v{stamp}-{os.getpid()}"
    tmp.rename(version)
    link = out.parent / f".{out.name}.link-{_host_pid()}"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    try:
        link.symlink_to(Path(versions.name) / version.name)  # relative: the parent can move
    except OSError as exc:
        raise BuildError(
            f"cannot create a symbolic link beside {out} ({exc.strerror}); publishing needs "
            "symlinks to switch versions atomically: use a folder on a filesystem that has them"
        ) from None
    if out.is_dir() and not out.is_symlink():
        _exchange_plain_folder(link, out, versions)
    else:
        os.replace(link, out)  # rename(2): atomic switch of the link
    log.info("published %s -> %s", out, version)
    _prune(versions, version, keep, [Path(p).resolve() for p in protect])
    return version


def _exchange_plain_folder(link: Path, out: Path, versions: Path) -> None:
    """Swap a plain ``out`` folder and the new link in one step, then keep the folder."""
    try:
        rename_exchange(link, out)
    except OSError as exc:
        link.unlink()
        raise BuildError(
            f"--out {out} is a plain folder and this system cannot swap it for a link "
            f"atomically ({exc.strerror}); rename or remove {out} (it holds the previous "
            "artifacts) and build again"
        ) from None
    kept = versions / f"previous-{link.name.rsplit('.link-', 1)[-1]}"
    link.rename(kept)  # ``link`` now names the old folder
    log.info("kept the previous plain folder %s as %s", out, kept)


def _prune(versions: Path, current: Path, keep: int, protect: list[Path]) -> None:
    olds = sorted(
        (p for p in versions.iterdir() if not p.name.startswith(".") and p != current),
        key=lambda p: p.stat().st_mtime,
    )
    for old in olds[: max(len(olds) - keep, 0)]:
        if any(old == p or old in p.parents for p in protect):
            log.info("kept %s: this build read a file in it", old.name)
            continue
        foreign = _foreign_entries(old)
        if foreign:
            log.warning("kept %s: it holds files this tool did not write (%s)", old, foreign[:5])
            continue
        shutil.rmtree(old, ignore_errors=True)


def recover_leftovers(out: Path) -> None:
    """Under the lock: remove what killed builds left behind.

    Temporary build folders (``.NAME.versions/.building-HOST-PID-*``) and links
    (``.NAME.link-HOST-PID``) of processes on this host that are gone. ``out`` itself is never
    touched: it always resolves to a complete version.
    """
    host = socket.gethostname()
    versions = versions_dir(out)
    candidates = list(versions.glob(f".building-{host}-*")) if versions.is_dir() else []
    candidates += list(out.parent.glob(f".{out.name}.link-{host}-*"))
    for path in candidates:
        pid = path.name.split(f"{host}-", 1)[1].split("-", 1)[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by a build that was killed", path.name)
