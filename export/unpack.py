"""Unpack an archive from ``python -m export pack`` (:mod:`export.archive`), trusting nothing in it.

Before anything is written, every member must be a regular file with a plain name (no ``/``, no
``..``: so no absolute paths either), listed once; then ``manifest.json`` is read and every other
member must be a file it lists, of the size it lists, so what is unpacked is bounded by the
manifest's sizes. This code writes each file itself into the given empty folder, hashing it on
the way (a sha256 that differs from the manifest: exit 4); nothing goes through
``TarFile.extract``, so no link, device, permission or path from the archive reaches the disk.
(``filter="data"`` would still accept subfolders and links that stay inside the destination.)
Torch-free.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
import zlib
from pathlib import Path

from export.errors import ArchiveError, ArtifactsChangedError, ManifestError
from export.manifest import Manifest

__all__ = ["MANIFEST", "unpack_archive"]

MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 16 << 20  # a build's manifest is a few kB
_BLOCK = 1 << 20
_PACK_ONLY = (
    "an archive from `python -m export pack` holds only manifest.json and the files it lists, "
    "at its top level"
)


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
