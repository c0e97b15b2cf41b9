"""Recognise the original TensorFlow PtychoPINN's files, and the command that imports them.

A user with the original's run folder tends to hand its files to whichever command is at hand
(``import-keras --config config.json``, ``--weights wts.h5.zip``). :func:`identify` tells
by content, not by name, whether a path is one of them, and :func:`import_command` is the
``python -m export import-tf`` line that imports it, for the one-line error that says so.
Reads zip listings, JSON and plain-data pickles only (nothing of the files runs).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptycho_torch.import_tf.unpickle import loads_plain_data

__all__ = [
    "ARCHIVE",
    "CONFIG_JSON",
    "FOLDER",
    "PARAMS_DILL",
    "WEIGHTS_H5",
    "OriginalFile",
    "identify",
    "import_command",
]

ARCHIVE = "wts.h5.zip"  # ModelManager.save's archive: weights, graph and params
CONFIG_JSON = "config.json"  # the run's parameters (params_cfg / network_and_physics)
PARAMS_DILL = "params.dill"  # params.cfg pickled by dill (a member of wts.h5.zip)
WEIGHTS_H5 = "model.weights.h5"  # Keras 3 save_weights of the original model
FOLDER = "run folder"  # a folder holding wts.h5.zip or the original's config.json

_MAX_SNIFF_BYTES = 64 << 20  # a config.json or params.dill is kilobytes; never read a big file
_PICKLE_PROTOCOL_2PLUS = b"\x80"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ARCHIVE_MEMBERS = ("diffraction_to_obj/model.keras", "autoencoder/model.keras", "manifest.dill")
_PARAMS_KEYS = {"N", "gridsize", "n_filters_scale", "object.big", "probe.big"}


@dataclass(frozen=True)
class OriginalFile:
    """A file or folder of the original TensorFlow PtychoPINN.

    Attributes:
        kind: :data:`ARCHIVE`, :data:`CONFIG_JSON`, :data:`PARAMS_DILL`, :data:`WEIGHTS_H5` or
            :data:`FOLDER`.
        path: the path as given.
        case: the run's name (``config.json``'s ``case``), if known.
    """

    kind: str
    path: Path
    case: str | None = None

    def describe(self) -> str:
        """``the original TensorFlow PtychoPINN's config.json (case n64-gs1)``."""
        case = f" (case {self.case})" if self.case else ""
        return f"the original TensorFlow PtychoPINN's {self.kind}{case}"


def identify(path: str | Path) -> OriginalFile | None:
    """What ``path`` is, if it is one of the original's files or a folder of them; else None."""
    path = Path(path)
    if path.is_dir():
        return _identify_folder(path)
    if not path.is_file():
        return None
    head = _head(path, len(_HDF5_SIGNATURE))
    if head.startswith(b"PK") and _is_archive(path):
        return OriginalFile(ARCHIVE, path, _case_beside(path))
    if head.startswith(_PICKLE_PROTOCOL_2PLUS) and _is_params_pickle(path):
        return OriginalFile(PARAMS_DILL, path, _case_beside(path))
    if head.startswith(_HDF5_SIGNATURE):
        beside = _identify_folder(path.parent)
        return None if beside is None else OriginalFile(WEIGHTS_H5, path, beside.case)
    doc = _json_object(path)
    if doc is not None and _is_original_config(doc):
        return OriginalFile(CONFIG_JSON, path, _case_name(doc))
    return None


def import_command(found: OriginalFile, out: str = "model.pt") -> str:
    """The ``python -m export import-tf`` line that imports ``found`` into ``out``.

    The archive wherever there is one (it carries weights, graph, params and probe); else the
    weights with the run's ``config.json`` and ``probe.npz`` (a ``params.dill`` holds both).
    """
    folder = found.path if found.kind == FOLDER else found.path.parent
    command = "python -m export import-tf"
    if found.kind == ARCHIVE:
        return f"{command} --archive {found.path} --out {out}"
    if found.kind == PARAMS_DILL:  # it holds the probe and intensity_scale too
        weights = folder / WEIGHTS_H5 if (folder / WEIGHTS_H5).is_file() else WEIGHTS_H5
        return f"{command} --weights {weights} --config {found.path} --out {out}"
    if (folder / ARCHIVE).is_file():
        return f"{command} --archive {folder / ARCHIVE} --out {out}"
    config = found.path if found.kind == CONFIG_JSON else folder / CONFIG_JSON
    return (
        f"{command} --weights {folder / WEIGHTS_H5} --config {config} "
        f"--probe {folder / 'probe.npz'} --out {out}"
    )


def _identify_folder(folder: Path) -> OriginalFile | None:
    config = folder / CONFIG_JSON
    doc = _json_object(config) if config.is_file() else None
    original_config = doc is not None and _is_original_config(doc)
    if original_config or ((folder / ARCHIVE).is_file() and _is_archive(folder / ARCHIVE)):
        return OriginalFile(FOLDER, folder, _case_name(doc) if original_config else None)
    return None


def _case_beside(path: Path) -> str | None:
    beside = _identify_folder(path.parent)
    return None if beside is None else beside.case


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _is_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return any(member in names for member in _ARCHIVE_MEMBERS)


def _is_params_pickle(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_SNIFF_BYTES:
            return False
        params = loads_plain_data(path.read_bytes(), str(path))
    except Exception:  # noqa: BLE001 - refused or unreadable (UnsafePickleError, EOFError, ...)
        return False
    return isinstance(params, dict) and set(params) >= _PARAMS_KEYS


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_SNIFF_BYTES:
            return None
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _is_original_config(doc: dict[str, Any]) -> bool:
    """The run's config.json: its parameters under ``params_cfg`` or ``network_and_physics``."""
    return isinstance(doc.get("params_cfg"), dict) or isinstance(
        doc.get("network_and_physics"), dict
    )


def _case_name(doc: dict[str, Any] | None) -> str | None:
    case = (doc or {}).get("case")
    return case if isinstance(case, str) and case else None
