"""Read the original's ``wts.h5.zip`` and Keras weight files with ``zipfile`` + ``h5py`` only.

``wts.h5.zip`` (written by the original's ``ModelManager.save``) holds ``manifest.dill`` and per
model (``autoencoder``, ``diffraction_to_obj``) a folder with ``model.keras`` (a zip:
``config.json``, ``metadata.json``, ``model.weights.h5``), ``params.dill`` (the original's
``params.cfg``), ``custom_objects.dill`` and ``model.h5`` (an ``intensity_scale`` attribute).
Nothing here deserialises Keras objects or runs pickled code: JSON is parsed as JSON, HDF5 is
read as arrays, and ``params.dill`` goes through :mod:`ptycho_torch.import_tf.unpickle`.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho_torch.import_tf.errors import ImportTFError, UnsafePickleError
from ptycho_torch.import_tf.unpickle import loads_plain_data

__all__ = ["MAX_MEMBER_BYTES", "TFArchive", "open_h5", "read_archive", "read_dataset"]

logger = logging.getLogger(__name__)

#: Largest zip member read into memory; the original's archives are tens of MB.
MAX_MEMBER_BYTES = 4 << 30
# The inference model holds the same conv layers (weights equal, checked by the fixtures) and
# its model.keras has no optimizer state, so it is the smaller read.
_PREFERRED_MODELS = ("diffraction_to_obj", "autoencoder")


@dataclass(frozen=True)
class TFArchive:
    """What the importer needs from ``wts.h5.zip``, read without running any of its code.

    Attributes:
        path: the archive.
        model_name: the folder read (``diffraction_to_obj`` or ``autoencoder``).
        keras_config: ``model.keras``'s ``config.json`` (the functional graph), plain JSON.
        weights_h5: bytes of ``model.keras``'s ``model.weights.h5``.
        params: the original's ``params.cfg`` from ``params.dill``, or None if it was refused.
        params_problem: why ``params`` is None, else None.
        params_refused: ``params.dill`` named a global that is not plain data (nothing ran).
        h5_intensity_scale: ``model.h5``'s ``intensity_scale`` attribute, if present.
    """

    path: Path
    model_name: str
    keras_config: dict[str, Any]
    weights_h5: bytes
    params: dict[str, Any] | None
    params_problem: str | None
    params_refused: bool
    h5_intensity_scale: float | None

    def member(self, name: str) -> str:
        return f"{self.path.name}:{self.model_name}/{name}"


def read_archive(path: str | Path) -> TFArchive:
    """Read ``wts.h5.zip``; a refused ``params.dill`` is reported in ``params_problem``.

    Raises:
        ImportTFError: the file is missing, not a zip, or lacks the original's layout.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportTFError(f"archive {path} does not exist; pass --archive PATH to wts.h5.zip")
    try:
        outer = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportTFError(f"{path} is not a zip archive ({exc}); expected wts.h5.zip") from None
    with outer:
        names = set(outer.namelist())
        model = _choose_model(outer, names, path)
        keras_bytes = _read_member(outer, f"{model}/model.keras", path)
        keras_config, weights_h5 = _read_keras(keras_bytes, f"{path.name}:{model}/model.keras")
        params, problem, refused = _read_params(outer, names, f"{model}/params.dill", path)
        scale = _read_h5_scale(outer, names, f"{model}/model.h5", path)
    logger.info(
        "read %s: %s/model.keras (%d graph layers, %.1f MB weights), params.dill %s",
        path, model, len(keras_config.get("config", {}).get("layers", [])),
        len(weights_h5) / 1e6, "read as plain data" if problem is None else "NOT USED",
    )  # fmt: skip
    return TFArchive(path, model, keras_config, weights_h5, params, problem, refused, scale)


def _choose_model(outer: zipfile.ZipFile, names: set[str], path: Path) -> str:
    listed: list[str] = []
    if "manifest.dill" in names:
        try:
            manifest = loads_plain_data(
                _read_member(outer, "manifest.dill", path), f"{path.name}:manifest.dill"
            )
            listed = [str(m) for m in manifest.get("models", [])]
        except (UnsafePickleError, AttributeError):
            logger.warning("%s: manifest.dill is not plain data; looking for model folders", path)
    for model in _PREFERRED_MODELS:
        if f"{model}/model.keras" in names and (not listed or model in listed):
            return model
    raise ImportTFError(
        f"{path} has none of {[f'{m}/model.keras' for m in _PREFERRED_MODELS]}; it is not an "
        "archive written by the original's ModelManager.save (wts.h5.zip)"
    )


def _read_member(archive: zipfile.ZipFile, name: str, where: Path | str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ImportTFError(f"{where} has no member {name}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ImportTFError(f"{where}:{name} is {info.file_size} bytes, over the read limit")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportTFError(f"cannot read {where}:{name}: {exc}") from None


def _read_keras(data: bytes, where: str) -> tuple[dict[str, Any], bytes]:
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ImportTFError(f"{where} is not a Keras 3 archive (zip): {exc}") from None
    with inner:
        try:
            config = json.loads(_read_member(inner, "config.json", where))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ImportTFError(f"{where}: config.json is not JSON: {exc}") from None
        weights = _read_member(inner, "model.weights.h5", where)
    if not isinstance(config, dict):
        raise ImportTFError(f"{where}: config.json is not a Keras model config")
    return config, weights


def _read_params(
    outer: zipfile.ZipFile, names: set[str], member: str, path: Path
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """``(params, problem, refused)``."""
    if member not in names:
        return None, f"{path.name} has no {member}", False
    try:
        params = loads_plain_data(_read_member(outer, member, path), f"{path.name}:{member}")
    except UnsafePickleError as exc:
        logger.warning("%s", exc)
        return None, str(exc), True
    if not isinstance(params, dict):
        kind = type(params).__name__
        return None, f"{path.name}:{member} holds a {kind}, not the params dict", False
    return params, None, False


def _read_h5_scale(
    outer: zipfile.ZipFile, names: set[str], member: str, path: Path
) -> float | None:
    if member not in names:
        return None
    try:
        with open_h5(_read_member(outer, member, path), f"{path.name}:{member}") as f:
            value = f.attrs.get("intensity_scale")
        return None if value is None else float(np.asarray(value).reshape(()))
    except (ImportTFError, TypeError, ValueError) as exc:
        logger.warning("%s:%s: no usable intensity_scale attribute (%s)", path.name, member, exc)
        return None


def open_h5(source: bytes | Path, where: str) -> h5py.File:
    """Open HDF5 bytes or a file read-only (h5py reads arrays; it runs no code)."""
    try:
        if isinstance(source, bytes):
            return h5py.File(io.BytesIO(source), "r")
        return h5py.File(source, "r")
    except OSError as exc:
        raise ImportTFError(f"{where} is not a readable HDF5 file: {exc}") from None


def read_dataset(f: h5py.File, path: str) -> np.ndarray | None:
    """The array at ``path``, or None if absent; links or storage outside the file are refused."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        link = f.get(sub, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise ImportTFError(f"HDF5 entry {sub} links to another file; refusing to follow it")
    obj = f[path]
    if not isinstance(obj, h5py.Dataset):
        return None
    if obj.is_virtual or obj.external:
        raise ImportTFError(f"HDF5 dataset {path} stores its data outside the file; refusing it")
    return np.asarray(obj[()])
