"""The stored reference: float32 output arrays (NPZ, signature layout) plus provenance (JSON).

``reference.json`` beside ``reference.npz`` holds the schema version, generator, head, signature,
``weights_sha256`` (:func:`ptycho_torch.checkpoint.model_state_sha256`), ``inputs_sha256``
(:func:`ptycho_torch.digest.arrays_sha256` of the feed) and the environment that produced it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ReferenceFormatError
from ptycho_torch.atomic import atomic_write
from ptycho_torch.errors import DataError
from ptycho_torch.jsonio import read_json_object
from ptycho_torch.npz import NpzRowReader

__all__ = [
    "REFERENCE_SCHEMA",
    "REQUIRED_PROVENANCE",
    "Reference",
    "ReferenceFile",
    "load_reference",
    "provenance_path",
    "save_reference",
]

REFERENCE_SCHEMA = 1
REQUIRED_PROVENANCE = (
    "schema",
    "generator",
    "head",
    "signature",
    "weights_sha256",
    "inputs_sha256",
)


@dataclass
class Reference:
    """A reference just written: its outputs and where they came from."""

    outputs: dict[str, np.ndarray]
    provenance: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class ReferenceFile:
    """A stored reference as the check reads it: provenance and array headers, never the arrays
    (their rows are read chunk by chunk)."""

    path: Path
    provenance: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]  # output name -> full shape, (samples, ...)
    dtypes: dict[str, np.dtype]  # output name -> dtype


def provenance_path(npz_path: str | Path) -> Path:
    """``reference.npz`` -> ``reference.json``."""
    return Path(npz_path).with_suffix(".json")


def save_reference(
    path: str | Path, outputs: Mapping[str, np.ndarray], provenance: Mapping[str, Any]
) -> Reference:
    """Write ``path`` (NPZ) and its JSON sidecar atomically; every array must be float32."""
    path = Path(path)
    prov = {"schema": REFERENCE_SCHEMA, **dict(provenance)}
    missing = [k for k in REQUIRED_PROVENANCE if k not in prov]
    if missing:
        raise ReferenceFormatError(f"reference provenance lacks {missing}")
    arrays = {}
    for name, value in outputs.items():
        a = np.asarray(value)
        if a.dtype != np.float32:
            raise ReferenceFormatError(
                f"reference output {name!r} must be float32, got {a.dtype}; cast before saving"
            )
        arrays[name] = np.ascontiguousarray(a)
    prov["outputs"] = {k: {"dtype": "float32", "shape": list(v.shape)} for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    atomic_write(
        provenance_path(path),
        lambda f: f.write((json.dumps(prov, indent=2, sort_keys=True) + "\n").encode()),
    )
    return Reference(outputs=arrays, provenance=prov, path=path)


def load_reference(path: str | Path) -> ReferenceFile:
    """Check a reference's provenance and array headers (no array is loaded)."""
    path = Path(path)
    side = provenance_path(path)
    if not path.is_file():
        raise ReferenceFormatError(
            f"reference {path} does not exist; make one with `python -m export reference` "
            "or pass --reference PATH"
        )
    if not side.is_file():
        raise ReferenceFormatError(
            f"reference {path} has no provenance file {side.name} beside it; "
            "regenerate it with `python -m export reference`"
        )
    prov = read_json_object(
        side, ReferenceFormatError, "regenerate it with `python -m export reference`"
    )
    missing = [k for k in REQUIRED_PROVENANCE if k not in prov]
    if missing:
        raise ReferenceFormatError(f"reference provenance {side} lacks {missing}")
    if prov["schema"] != REFERENCE_SCHEMA:
        raise ReferenceFormatError(
            f"reference {path} has schema {prov['schema']!r}; this version reads {REFERENCE_SCHEMA}"
        )
    try:
        with NpzRowReader(path, "reference file") as rows:
            members = {k: rows.member(k) for k in sorted(rows.members)}
    except DataError as exc:
        raise ReferenceFormatError(
            f"cannot read reference arrays {path} (pickled or corrupt NPZ?): {exc}"
        ) from None
    shapes = {k: m.shape for k, m in members.items()}
    dtypes = {k: m.dtype for k, m in members.items()}
    return ReferenceFile(path=path, provenance=prov, shapes=shapes, dtypes=dtypes)
