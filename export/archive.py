"""One self-contained ``.tar.gz`` of an artifacts folder: ``python -m export pack`` writes it, and
every host command that takes ``--artifacts`` reads it through :func:`open_artifacts`. Torch-free.

Why it exists: ``python -m export build --out artifacts`` publishes ``artifacts`` as a relative
symbolic link into ``.artifacts.versions/``, and ``cp -r``, ``scp -r`` and some CI upload steps
copy the link, not the files. An archive holds the files themselves.

**Format.** ``manifest.json`` first, then every file it lists, at the top level, as regular
files (mode 0644, owner 0, the build's ``created`` time), in a gzip stream with no name or time in
its header: packing the same build twice gives the same bytes.

**Reading trusts nothing in the archive** (:mod:`export.unpack`); the folder it is unpacked
into is removed when the command ends, however it ends.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import filecmp
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from export.errors import ArchiveError, ArtifactsChangedError
from export.manifest import Manifest, read_manifest, sha256_file
from export.unpack import MANIFEST, unpack_archive

__all__ = ["ARCHIVE_SUFFIXES", "PackResult", "open_artifacts", "pack_artifacts"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_artifacts` wrote."""

    archive: str
    source: str  # the folder packed, links resolved
    files: int  # listed in manifest.json (packed with it)
    size: int  # bytes of the archive
    sha256: str  # of the archive, to compare after the copy
    unchanged: bool  # the same archive was already at ``archive``
    left_out: list[str]  # entries of the folder that manifest.json does not list

    def lines(self) -> list[str]:
        """The summary, then what was left out (if anything)."""
        verb = "already packed (unchanged)" if self.unchanged else "packed"
        lines = [
            f"{verb} manifest.json and the {self.files} files it lists from {self.source} into "
            f"{self.archive}: {self.size / 2**20:.1f} MiB, sha256 {self.sha256}"
        ]
        if self.left_out:
            lines.append(f"left out (not listed in manifest.json): {', '.join(self.left_out)}")
        return lines


def pack_artifacts(directory: str | Path, out: str | Path, *, force: bool = False) -> PackResult:
    """Write ``out``: one archive of the artifacts ``directory`` (a link is followed).

    Every listed file is checked against the manifest first, and hashed again as it is packed.
    ``out`` is written to a temporary file beside it and renamed into place when complete.

    Raises:
        ManifestError: (exit 2) no readable manifest, or a dangling link.
        ArtifactsChangedError: (exit 4) a listed file is missing or changed.
        ArchiveError: (exit 2) ``out`` is a folder, or a different file without ``force``.
    """
    directory, out = Path(directory), Path(out)
    if out.is_dir():
        raise ArchiveError(
            f"--out {out} is a folder; name the archive file, e.g. {out}/artifacts.tar.gz"
        )
    if not out.parent.is_dir():
        raise ArchiveError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    manifest = read_manifest(directory)  # every file's sha256: missing or changed is exit 4
    source = directory.resolve()
    names = sorted(set(manifest.files) - {MANIFEST})
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_archive(f, source, names, manifest)
        tmp.chmod(0o644)  # mkstemp makes it private; the archive is meant to be copied
        unchanged = out.is_file() and filecmp.cmp(tmp, out, shallow=False)
        if (out.exists() or out.is_symlink()) and not (unchanged or force):
            raise ArchiveError(
                f"--out {out} exists and differs from this archive; choose another --out or pass "
                "--force to replace it"
            )
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    listed = {MANIFEST, *names}
    return PackResult(
        archive=str(out),
        source=str(source),
        files=len(names),
        size=out.stat().st_size,
        sha256=sha256_file(out),
        unchanged=unchanged,
        left_out=sorted(p.name for p in source.iterdir() if p.name not in listed),
    )


def _write_archive(f: IO[bytes], source: Path, names: list[str], manifest: Manifest) -> None:
    mtime = _created_time(manifest)
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        data = (source / MANIFEST).read_bytes()
        tar.addfile(_member(MANIFEST, len(data), mtime), io.BytesIO(data))
        for name in names:
            with (source / name).open("rb") as file:
                reader = _HashingReader(file)
                tar.addfile(_member(name, os.fstat(file.fileno()).st_size, mtime), reader)
            if reader.sha256.hexdigest() != manifest.files[name].sha256:
                raise ArtifactsChangedError(
                    f"{source}: {name} changed while it was packed; pack again once nothing "
                    "writes to the folder"
                )


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info  # a regular file owned by 0:0 with empty user and group names


def _created_time(manifest: Manifest) -> int:
    try:
        return int(_dt.datetime.fromisoformat(manifest.created).timestamp())
    except ValueError:
        return 0


class _HashingReader:
    """A file's ``read`` that also feeds a sha256 (the bytes packed are the bytes checked)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.sha256 = file, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.sha256.update(data)
        return data


@contextlib.contextmanager
def open_artifacts(path: str | Path) -> Iterator[Path]:
    """The folder behind ``--artifacts``: a folder (or link, or nothing) as it is, for
    :func:`export.manifest.read_manifest` to judge; a file unpacked with :func:`unpack_archive`
    into a temporary folder that is removed when the block ends.

    Raises:
        ArchiveError: (exit 2) an archive that is missing, unreadable, truncated or unsafe.
        ManifestError: (exit 2) an archive whose manifest.json is missing or malformed.
        ArtifactsChangedError: (exit 4) an archived file that is missing or differs from the
            manifest.
    """
    path = Path(path)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix=f"{path.name}-") as tmp:
            unpack_archive(path, Path(tmp))
            yield Path(tmp)
        return
    if path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_symlink() and not path.exists():
        raise ArchiveError(
            f"archive {path} not found; pass the archive `python -m export pack` wrote"
        )
    yield path
