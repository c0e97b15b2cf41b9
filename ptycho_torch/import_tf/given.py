"""Import what a path given as ``--archive`` or ``--weights`` is: the original's archive, its
Keras weights, or a run folder (whatever it holds). A file of the original given as the other
kind is refused in one line naming the command that imports it
(:func:`ptycho_torch.import_tf.originals.import_command`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ptycho_torch.import_tf.errors import ImportTFError
from ptycho_torch.import_tf.importer import ImportedModel, import_archive, import_weights
from ptycho_torch.import_tf.originals import (
    ARCHIVE,
    CONFIG_JSON,
    FOLDER,
    WEIGHTS_H5,
    OriginalFile,
    identify,
    import_command,
)

__all__ = ["import_given"]

logger = logging.getLogger("ptycho_torch.import_tf")


def import_given(
    archive: Path | None = None,
    weights: Path | None = None,
    *,
    config: Path | None = None,
    intensity_scale: float | None = None,
    probe: Path | None = None,
    out: str = "model.pt",
) -> ImportedModel:
    """Import what ``archive`` or ``weights`` (exactly one) is: a run folder imports whatever it
    holds; a file of the original given as the other kind is an :class:`ImportTFError` naming
    the command that imports it (``out`` goes into that command).
    """
    options: dict[str, Any] = {"config": config, "intensity_scale": intensity_scale, "probe": probe}
    flag, given = ("--archive", archive) if archive is not None else ("--weights", weights)
    if given is None:
        raise ImportTFError("give --archive or --weights")
    found = identify(given)
    if found is not None and found.kind == FOLDER:
        return _import_folder(found, options)
    wanted = ARCHIVE if flag == "--archive" else WEIGHTS_H5
    if found is None and given.is_dir():
        raise ImportTFError(
            f"{flag} {given} is a folder with neither the original's {ARCHIVE} nor its "
            f"{CONFIG_JSON}; pass {flag} PATH to the {wanted}"
        )
    if found is not None and found.kind != wanted:
        raise ImportTFError(
            f"{flag} {given} is {found.describe()}, not a {wanted}; import it with "
            f"`{import_command(found, out)}`"
        )
    if flag == "--archive":
        return import_archive(given, **options)
    return import_weights(given, **options)


def _import_folder(folder: OriginalFile, options: dict[str, Any]) -> ImportedModel:
    """The run folder's wts.h5.zip, else its model.weights.h5 with config.json and probe.npz
    beside it (flags still win)."""
    archive = folder.path / ARCHIVE
    if archive.is_file():
        logger.info("%s is %s: importing its %s", folder.path, folder.describe(), ARCHIVE)
        return import_archive(archive, **options)
    weights = folder.path / WEIGHTS_H5
    if not weights.is_file():
        raise ImportTFError(
            f"{folder.path} is {folder.describe()} but holds neither {ARCHIVE} nor {WEIGHTS_H5}; "
            "pass --archive or --weights with the file's path"
        )
    beside = {"config": folder.path / CONFIG_JSON, "probe": folder.path / "probe.npz"}
    for name, path in beside.items():
        if options[name] is None and path.is_file():
            options[name] = path
    logger.info(
        "%s is %s without %s: importing %s (config %s, probe %s)",
        folder.path, folder.describe(), ARCHIVE, WEIGHTS_H5, options["config"], options["probe"],
    )  # fmt: skip
    return import_weights(weights, **options)
