"""``manifest.json``: what every artifact is, where it came from, and how to check it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from export.errors import ArtifactsChangedError, ManifestError
from export.signature import Head
from ptycho_torch.jsonio import read_json

__all__ = [
    "MANIFEST_SCHEMA",
    "CheckpointInfo",
    "FileEntry",
    "Manifest",
    "file_entry",
    "package_versions",
    "read_manifest",
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


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256_file(path), path.stat().st_size)


@dataclass(frozen=True)
class FileEntry:
    """One artifact: its sha256 and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class CheckpointInfo:
    """The checkpoint the artifacts were built from.

    ``path`` is where it was (resolved, for the record); ``weights_file`` is the copy of its
    weights inside the artifacts folder, so a copied folder is self-contained.
    """

    path: str
    sha256: str
    weights_sha256: str
    weights_file: str | None = None


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` as a type: the one schema of an artifacts folder besides the signature.

    ``signature`` stays the plain dict :meth:`export.signature.Signature.to_dict` writes (read it
    with ``Signature.from_dict``); fields this version does not know are kept in ``extra`` and
    written back unchanged.
    """

    head: Head
    signature: dict[str, Any]
    files: dict[str, FileEntry]
    checkpoint: CheckpointInfo
    inputs_sha256: str
    schema_version: int = MANIFEST_SCHEMA
    created: str = ""
    opset: int | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    exporters: dict[str, str] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    precision_policy: dict[str, str] = field(default_factory=dict)
    contract: dict[str, Any] = field(default_factory=dict)
    loadback_max_abs_vs_eager: dict[str, float] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    torchscript_note: str = ""
    # torch CPU threads of the build (ThreadChoice.to_dict()); None in manifests from before it
    threads: dict[str, Any] | None = None
    # ONNX Runtime session settings a host applies (export.session.SessionSettings.to_dict(),
    # written by `export bench --save-tuning`); None: ONNX Runtime's defaults, as before it
    onnxruntime_session: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["files"] = {name: asdict(entry) for name, entry in self.files.items()}
        out["checkpoint"] = asdict(self.checkpoint)
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, raw: object, source: str = "manifest") -> Manifest:
        """Check the layout and build the type.

        Raises:
            ManifestError: (exit 2) naming every problem and ``source``.
        """
        problems = _layout_problems(raw)
        if problems:
            raise ManifestError(f"{source} is not a build manifest: {'; '.join(problems)}; rebuild")
        assert isinstance(raw, dict)
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in raw.items() if k in known}
        kwargs["files"] = {
            str(n): FileEntry(str(e["sha256"]), int(e.get("size", -1)))
            for n, e in raw["files"].items()
        }
        ck = raw["checkpoint"]
        kwargs["checkpoint"] = CheckpointInfo(
            str(ck["path"]),
            str(ck.get("sha256", "")),
            str(ck["weights_sha256"]),
            ck.get("weights_file"),
        )
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def weights_path(self, directory: str | Path) -> Path:
        """The weights to run the eager model from: the copy in the folder when there is one."""
        if self.checkpoint.weights_file:
            return Path(directory) / self.checkpoint.weights_file
        return Path(self.checkpoint.path)

    def verify(self, directory: str | Path) -> None:
        """Every file listed is present and unchanged.

        Raises:
            ArtifactsChangedError: (exit 4) naming every missing or changed file.
        """
        directory = Path(directory)
        missing, changed = self.file_problems(directory)
        if missing or changed:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if changed:
                parts.append(f"changed since the build (sha256 differs) {', '.join(changed)}")
            raise ArtifactsChangedError(
                f"{directory}: {'; '.join(parts)}; rebuild with `python -m export build`"
            )

    def file_problems(self, directory: Path) -> tuple[list[str], list[str]]:
        """``(missing, changed)``: listed files absent from ``directory`` or not matching."""
        missing, changed = [], []
        for name, entry in self.files.items():
            path = directory / name
            if not path.is_file():
                missing.append(name)
            elif sha256_file(path) != entry.sha256:
                changed.append(name)
        return missing, changed

    def reference_problems(self, provenance: dict[str, Any], inputs_sha: str) -> list[str]:
        """Why a reference with this provenance does not belong to these artifacts (empty: it
        does): other weights (or none recorded), other inputs, or another head. The one
        freshness rule of ``parity check`` and the torch-free ``export verify``."""
        problems = []
        weights = self.checkpoint.weights_sha256
        if provenance.get("weights_sha256") is None:
            problems.append(
                "it records no weights digest (weights_sha256 null: "
                f"{provenance.get('weights_note', 'made without the weights it belongs to')})"
            )
        elif provenance.get("weights_sha256") != weights:
            problems.append(
                f"weights_sha256 {str(provenance.get('weights_sha256'))[:12]} != artifacts' "
                f"{weights[:12]}"
            )
        if provenance.get("inputs_sha256") != inputs_sha:
            problems.append(
                f"inputs_sha256 {str(provenance.get('inputs_sha256'))[:12]} != inputs' "
                f"{inputs_sha[:12]}"
            )
        if provenance.get("head") != self.head:
            problems.append(f"head {provenance.get('head')!r} != artifacts' {self.head!r}")
        return problems

    def to_json(self) -> str:
        """The text of ``manifest.json`` (sorted keys, so equal manifests are equal bytes)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, directory: str | Path) -> None:
        (Path(directory) / "manifest.json").write_text(self.to_json())


def read_manifest(directory: str | Path, *, verify: bool = True) -> Manifest:
    """Read ``DIR/manifest.json`` and (by default) check every file it lists; the one reader
    build, check, host, triton and bench share.

    Raises:
        ManifestError: (exit 2) the file is missing, not JSON, or not a manifest.
        ArtifactsChangedError: (exit 4) with ``verify``: a listed file is missing or changed.
    """
    directory = Path(directory)
    path = directory / "manifest.json"
    if not path.is_file():
        raise ManifestError(_no_manifest(directory))
    raw = read_json(path, ManifestError, "rebuild the artifacts")
    manifest = Manifest.from_dict(raw, source=str(path))
    if verify:
        manifest.verify(directory)
    return manifest


def _no_manifest(directory: Path) -> str:
    """Why ``directory`` has no manifest, and what to do: a link copied without its target
    (``cp -r`` of the published ``--out`` link), an archive given to a command that wants a
    folder, or simply the wrong folder."""
    if directory.is_symlink() and not directory.exists():
        return (
            f"{directory} is a symbolic link to {os.readlink(directory)} that does not exist here "
            "(copied without following links?); copy with `cp -rL` or `rsync -L`, or use "
            "`python -m export pack`"
        )
    if directory.is_file():
        return (
            f"{directory} is a file, not an artifacts folder; `export verify` and `export predict` "
            f"read an archive from `python -m export pack` as it is, other commands need it "
            f"unpacked: mkdir artifacts && tar -xzf {directory} -C artifacts"
        )
    return f"{directory} has no manifest.json; pass the artifacts folder `python -m export build` wrote"


def _layout_problems(raw: object) -> list[str]:
    if not isinstance(raw, dict):
        return [f"holds a JSON {type(raw).__name__}, expected an object"]
    problems = []
    files = raw.get("files")
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
    if not isinstance(raw.get("signature"), dict):
        problems.append("'signature' must be an object")
    if not isinstance(raw.get("head"), str):
        problems.append("'head' must be a string")
    if not isinstance(raw.get("inputs_sha256"), str):
        problems.append("'inputs_sha256' must be a string")
    ck = raw.get("checkpoint")
    if not isinstance(ck, dict) or not all(
        isinstance(ck.get(k), str) for k in ("path", "weights_sha256")
    ):
        problems.append("'checkpoint' must be an object with 'path' and 'weights_sha256'")
    elif ck.get("weights_file") is not None and not (
        isinstance(ck["weights_file"], str) and _plain_file_name(ck["weights_file"])
    ):
        problems.append("'checkpoint.weights_file' must be a plain file name in the folder")
    return problems


def _plain_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def package_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks that touch the artifacts (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
