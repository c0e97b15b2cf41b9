"""``manifest.json``: what every artifact is, where it came from, and how to check it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_SCHEMA",
    "file_entry",
    "file_problems",
    "package_versions",
    "sha256_file",
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


def package_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks that touch the artifacts (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
