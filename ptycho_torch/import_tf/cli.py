"""``python -m ptycho_torch.import_tf``: arguments in, checkpoint out, errors to exit code 2."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ptycho_torch.cli import run_cli
from ptycho_torch.import_tf.errors import ImportTFError
from ptycho_torch.import_tf.importer import (
    ImportedModel,
    import_archive,
    import_weights,
    write_checkpoint,
)
from ptycho_torch.import_tf.originals import (
    ARCHIVE,
    CONFIG_JSON,
    FOLDER,
    WEIGHTS_H5,
    OriginalFile,
    identify,
    import_command,
)

__all__ = ["main"]

logger = logging.getLogger("ptycho_torch.import_tf")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ptycho_torch.import_tf",
        description=(
            "Import a model trained by the original TensorFlow PtychoPINN into a checkpoint for "
            "`python -m export build --checkpoint`. Reads zip/HDF5/JSON only and unpickles plain "
            "data only: no TensorFlow, no code from the files."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--archive",
        type=Path,
        help="the original's wts.h5.zip (weights, graph and params), or the run folder holding it",
    )
    source.add_argument(
        "--weights",
        type=Path,
        help="a Keras 3 model.weights.h5 of the original (roles from weights_index.json beside "
        "it if present); needs --config, and --probe unless the config has one. A run folder "
        "imports its wts.h5.zip, else its model.weights.h5 with config.json and probe.npz",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="the original's params: the run's config.json (with params_cfg), a flat JSON object "
        "of original names, or a params.dill taken out of wts.h5.zip; overrides the archive's "
        "params.dill key by key",
    )
    p.add_argument(
        "--intensity-scale",
        type=float,
        help="the original's params['intensity_scale'] = exp(log_scale); overrides the files",
    )
    p.add_argument(
        "--probe",
        type=Path,
        help="NPZ with 'probe' (normalised, as the model holds it) or 'probeGuess' (normalised "
        "here like the original does); overrides params.dill",
    )
    p.add_argument(
        "--out", type=Path, default=Path("model.pt"), help="checkpoint to write (default model.pt)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)

    def body() -> None:
        imported = _import(args)
        write_checkpoint(imported.model, args.out)
        c = imported.model.config
        print(
            f"imported {imported.n_convs} convs (N={c.N}, gridsize={c.gridsize}, "
            f"n_filters_scale={c.n_filters_scale}) -> {args.out}\n"
            f"next: python -m export build --checkpoint {args.out} --inputs SCAN.npz "
            f"(a scan NPZ with {c.N}x{c.N} patterns, or a feed NPZ of float32[B, {c.C}, {c.N}, {c.N}])"
        )

    return run_cli(body)


def _import(args: argparse.Namespace) -> ImportedModel:
    """Import what the arguments name; a run folder imports whatever it holds, and a file of the
    original under the wrong flag is one line naming the command that imports it."""
    options = {"config": args.config, "intensity_scale": args.intensity_scale, "probe": args.probe}
    given: Path = args.archive if args.archive is not None else args.weights
    flag = "--archive" if args.archive is not None else "--weights"
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
            f"`{import_command(found, str(args.out))}`"
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
