"""One self-contained ``.tar.gz`` of an artifacts folder: ``python -m export pack`` writes it, and
every host command that takes ``--artifacts`` reads it through :func:`open_artifacts`. Torch-free.

Why it exists: ``python -m export build --out artifacts`` publishes ``artifacts`` as a relative
symbolic link into ``.artifacts.versions/``, and ``cp -r``, ``scp -r`` and some CI upload steps
copy the link, not the files. An archive holds the files themselves.

**Format.** ``manifest.json`` first, then every file it lists, at the top level, as regular
files (mode 0644, owner 0, the build's ``created`` time), in a gzip stream with no name or time in
its header: packing the same build twice gives the same bytes.

**Reading trusts nothing in the archive.** Before anything is written, every member must be a
regular file with a plain name (no ``/``, no ``..``: so no absolute paths either), listed once;
then ``manifest.json`` is read and every other member must be a file it lists, of the size it
lists, so what is unpacked is bounded by the manifest's sizes. This code writes each file itself
into a fresh temporary folder, hashing it on the way (a sha256 that differs from the manifest:
exit 4); nothing goes through ``TarFile.extract``, so no link, device, permission or path from the
archive reaches the disk. (``filter="data"`` would still accept subfolders and links that stay
inside the destination, and Python 3.10 has it only from 3.10.12.) The folder is removed when the
command ends, however it ends.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import filecmp
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from export.errors import ArchiveError, ArtifactsChangedError, ManifestError
from export.manifest import Manifest, read_manifest, sha256_file

__all__ = ["ARCHIVE_SUFFIXES", "PackResult", "open_artifacts", "pack_artifacts", "unpack_archive"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 16 << 20  # a build's manifest is a few kB
_BLOCK = 1 << 20
_PACK_ONLY = (
    "an archive from `python -m export pack` holds only manifest.json and the files it lists, "
    "at its top level"
)


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


def unpack_archive(archive: Path, into: Path) -> Manifest:
    """Unpack an archive from :func:`pack_artifacts` into the empty folder ``into``, checked as
    the module docstring says; returns its manifest.

    Raises:
        ArchiveError: (exit 2) not a tar archive, corrupted or truncated, or a member refused.
        ManifestError: (exit 2) no manifest.json, or one that is not a build manifest.
        ArtifactsChangedError: (exit 4) a listed file missing from the archive or different.
    """
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the `with tar` below
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise ArchiveError(
            f"{archive} is not a .tar.gz archive (or its start is damaged); pass the artifacts "
            "folder or the archive `python -m export pack` wrote"
        ) from None
    try:
        with tar:
            members = _checked_members(archive, tar.getmembers())  # reads every header
            manifest = _read_manifest_member(archive, tar, members, into)
            _unpack_listed(archive, tar, members, manifest, into)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(
            f"{archive} is corrupted or truncated ({exc}); copy it again, or pack it again with "
            "`python -m export pack`"
        ) from None
    return manifest


def _checked_members(archive: Path, members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """Members by plain name; refuses (before anything is written) any other kind of member."""
    by_name: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = member.name.removeprefix("./")
        if name in ("", ".") and member.isdir():
            continue  # the top folder entry of `tar -C DIR .`
        if not member.isreg():
            why = "a link" if member.issym() or member.islnk() else "not a regular file"
        elif name.startswith("/") or ".." in name.split("/"):
            why = "a path outside the folder"
        elif "/" in name or "\\" in name:
            why = "not at the top level"
        elif name in by_name:
            why = "listed twice"
        else:
            by_name[name] = member
            continue
        raise ArchiveError(
            f"{archive}: refused member {member.name!r} ({why}); {_PACK_ONLY}; nothing was unpacked"
        )
    return by_name


def _read_manifest_member(
    archive: Path, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], into: Path
) -> Manifest:
    member = members.get(MANIFEST)
    if member is None:
        held = ", ".join(sorted(members)[:5]) or "nothing"
        raise ManifestError(
            f"{archive} holds no manifest.json (it holds {held}): not an archive from "
            "`python -m export pack`; pack the artifacts folder with `python -m export pack DIR "
            "--out FILE`"
        )
    if member.size > _MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{archive}: manifest.json is {member.size} bytes, not a build manifest")
    data = _read_member(tar, member)
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"{archive}: manifest.json is not JSON ({exc}); pack again") from None
    manifest = Manifest.from_dict(raw, source=f"{archive}: manifest.json")
    (into / MANIFEST).write_bytes(data)
    return manifest


def _unpack_listed(
    archive: Path,
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    manifest: Manifest,
    into: Path,
) -> None:
    extra = sorted(set(members) - set(manifest.files) - {MANIFEST})
    if extra:
        raise ArchiveError(
            f"{archive}: refused member {extra[0]!r} (manifest.json does not list it); "
            f"{_PACK_ONLY}; nothing was unpacked"
        )
    total = sum(max(entry.size, 0) for entry in manifest.files.values())
    free = shutil.disk_usage(into).free
    if total > free:
        raise ArchiveError(
            f"{archive} unpacks to {total / 2**20:.0f} MiB but {into.parent} has "
            f"{free / 2**20:.0f} MiB free; set TMPDIR to a folder with room"
        )
    missing, changed = [], []
    for name, entry in sorted(manifest.files.items()):
        member = members.get(name)
        if member is None:
            missing.append(name)
        elif entry.size >= 0 and member.size != entry.size:
            changed.append(name)  # never unpack more than the manifest says
        elif _copy_member(tar, member, into / name) != entry.sha256:
            changed.append(name)
    if missing or changed:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        if changed:
            parts.append(f"differs from manifest.json (size or sha256) {', '.join(changed)}")
        raise ArtifactsChangedError(
            f"{archive}: {'; '.join(parts)}: the archive is not what `python -m export pack` "
            "wrote (truncated, altered or packed by hand); copy it again or pack it again"
        )


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    assert source is not None  # a regular file (checked)
    with source:
        return source.read()


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> str:
    """Write a regular member to ``dest`` (a new file); returns its sha256."""
    source = tar.extractfile(member)
    assert source is not None  # a regular file (checked)
    digest = hashlib.sha256()
    with source, dest.open("xb") as f:
        for block in iter(lambda: source.read(_BLOCK), b""):
            digest.update(block)
            f.write(block)
    return digest.hexdigest()
