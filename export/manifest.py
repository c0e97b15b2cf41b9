"""``manifest.json``: what every artifact is, where it came from, and how to check it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from export.errors import ArtifactsChangedError, ManifestError

__all__ = [
    "MANIFEST_SCHEMA",
    "file_entry",
    "file_problems",
    "package_versions",
    "read_manifest",
    "sha256_file",
    "verify_files",
]

MANIFEST_SCHEMA = 1
_PACKAGES = (
    "torch",
    "lightning",
    "onnx",
    "onnxscript",
    "onnxruntime-gpu",
    "onnxruntime",
    "numpy",
    "tensorflow-cpu",
    "tensorflow",
)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def file_problems(directory: Path, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(missing, changed)``: manifest files absent from ``directory`` or not matching sha256.

    Imports nothing but the standard library, so the torch-free host uses it too.
    """
    missing, changed = [], []
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            missing.append(name)
        elif sha256_file(path) != entry["sha256"]:
            changed.append(name)
    return missing, changed


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read ``DIR/manifest.json``, checking its layout; the one reader build, check, host and
    triton share.

    Raises:
        ManifestError: (exit 2) the file is missing, not JSON, or not a manifest.
    """
    directory = Path(directory)
    path = directory / "manifest.json"
    if not path.is_file():
        raise ManifestError(
            f"{directory} has no manifest.json; pass the artifacts folder `python -m export build` "
            "wrote"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"cannot read {path} as JSON: {exc}; rebuild the artifacts") from None
    problems = []
    if not isinstance(manifest, dict):
        problems.append(f"holds a JSON {type(manifest).__name__}, expected an object")
    else:
        files = manifest.get("files")
        if not isinstance(files, dict):
            problems.append("'files' must be an object of {name: {sha256, size}}")
        else:
            bad = [
                str(name)
                for name, entry in files.items()
                if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
            ]
            if bad:
                problems.append(f"file entries without a sha256: {bad}")
            outside = [str(n) for n in files if not _plain_file_name(str(n))]
            if outside:  # '../x' or '/etc/x' would be read (hashed) outside the folder
                problems.append(f"file names that are not plain names in the folder: {outside}")
        if not isinstance(manifest.get("signature"), dict):
            problems.append("'signature' must be an object")
    if problems:
        raise ManifestError(f"{path} is not a build manifest: {'; '.join(problems)}; rebuild")
    return manifest


def _plain_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def verify_files(directory: str | Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is present and unchanged.

    Raises:
        ArtifactsChangedError: (exit 4) naming every missing or changed file.
    """
    directory = Path(directory)
    missing, changed = file_problems(directory, manifest)
    if missing or changed:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if changed:
            parts.append(f"changed since the build (sha256 differs) {', '.join(changed)}")
        raise ArtifactsChangedError(
            f"{directory}: {'; '.join(parts)}; rebuild with `python -m export build`"
        )


def package_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks that touch the artifacts (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
