"""Refuse a ``.pt2`` archive that would make ``torch.export.load`` unpickle anything.

``torch.export.load`` (torch 2.13) unpickles parts of an archive without ``weights_only``:
weights or constants flagged ``use_pickle`` (``torch.load(weights_only=False)``), custom and
opaque objects (``pickle.loads``), a legacy constants file, and sample inputs whose
``weights_only`` load fails (it then retries with ``weights_only=False``). Any of these lets
whoever hands over an artifacts folder run code on the machine that checks it, and the manifest
cannot help: it is not signed, so its sha256 can be updated to match.

The archives this project writes use none of them: weights and constants are raw tensor bytes
described by JSON, and the sample inputs are plain tensors. :func:`check_pt2_archive` reads the
zip's JSON and member names, test-loads the sample inputs with ``torch.load(weights_only=True)``
(which unpickles nothing but tensors) and refuses anything else.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from export.errors import ExportError

__all__ = ["UnsafeArchiveError", "check_pt2_archive"]

_RAW_PREFIXES = ("weight_", "tensor_")  # payload files holding raw tensor bytes
_UNSAFE_PREFIXES = ("custom_obj_", "opaque_obj_")


class UnsafeArchiveError(ExportError):
    """The ``.pt2`` archive holds pickled objects; it is refused before anything is loaded."""


def check_pt2_archive(path: str | Path) -> None:
    """Raise :class:`UnsafeArchiveError` unless loading ``path`` can unpickle nothing.

    Reads member names and the weights/constants JSON configs, and test-loads the sample
    inputs with ``torch.load(weights_only=True)`` (``torch.export.load`` would retry a failing
    ``weights_only`` load without it).
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UnsafeArchiveError(f"{path} is not a .pt2 archive (zip): {exc}") from None
    problems: list[str] = []
    with archive:
        names = archive.namelist()
        for name in names:
            parts = name.split("/")
            if "data" in parts and parts[-2:-1] == ["constants"] and name.endswith(".pt"):
                problems.append(f"{name}: legacy pickled constants file")
            if parts[-1].endswith((".pkl", ".pickle")):
                problems.append(f"{name}: pickle file")
        for name in names:
            if name.endswith(("model_weights_config.json", "model_constants_config.json")):
                problems.extend(_config_problems(name, archive.read(name)))
        if not problems:
            for name in names:
                if "/data/sample_inputs/" in name:
                    _check_sample_inputs(path, name, archive.read(name))
    if problems:
        raise UnsafeArchiveError(
            f"refusing to load {path}: it holds pickled objects, which torch.export.load would "
            f"execute ({'; '.join(problems[:5])}{'; ...' if len(problems) > 5 else ''}). "
            "Artifacts written by `python -m export build` never do; rebuild model.pt2 from a "
            "trusted checkpoint"
        )


def _check_sample_inputs(path: Path, name: str, raw: bytes) -> None:
    import torch

    try:
        torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not plain tensors
        raise UnsafeArchiveError(
            f"refusing to load {path}: its sample inputs {name} are not plain tensors "
            f"(torch.load(weights_only=True) failed: {type(exc).__name__}); rebuild "
            "model.pt2 from a trusted checkpoint"
        ) from None


def _config_problems(name: str, raw: bytes) -> list[str]:
    try:
        config: Any = json.loads(raw)
    except ValueError as exc:
        return [f"{name}: not JSON ({exc})"]
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        return [f"{name}: no 'config' object"]
    problems = []
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            problems.append(f"{name}: entry {fqn!r} is not an object")
            continue
        file = str(meta.get("path_name", ""))
        if meta.get("use_pickle"):
            problems.append(f"{fqn} ({file}) is pickled")
        elif file.startswith(_UNSAFE_PREFIXES):
            problems.append(f"{fqn} ({file}) is a pickled custom/opaque object")
        elif not file.startswith(_RAW_PREFIXES):
            problems.append(f"{fqn} ({file}) is of an unknown kind")
    return problems
