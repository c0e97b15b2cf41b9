"""``python -m ptycho_torch.import_tf``: arguments in, checkpoint out, errors to exit code 2."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ptycho_torch.cli import run_cli
from ptycho_torch.import_tf.importer import import_archive, import_weights, write_checkpoint

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
        "--archive", type=Path, help="the original's wts.h5.zip (weights, graph and params)"
    )
    source.add_argument(
        "--weights",
        type=Path,
        help="a Keras 3 model.weights.h5 of the original (roles from weights_index.json beside "
        "it if present); needs --config, and --probe unless the config has one",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="JSON of the original's params (the run's config.json with params_cfg, or a flat "
        "object of original names); overrides params.dill key by key",
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
        options = {
            "config": args.config,
            "intensity_scale": args.intensity_scale,
            "probe": args.probe,
        }
        if args.archive is not None:
            imported = import_archive(args.archive, **options)
        else:
            imported = import_weights(args.weights, **options)
        write_checkpoint(imported.model, args.out)
        c = imported.model.config
        print(
            f"imported {imported.n_convs} convs (N={c.N}, gridsize={c.gridsize}, "
            f"n_filters_scale={c.n_filters_scale}) -> {args.out}\n"
            f"next: python -m export build --checkpoint {args.out} --inputs SCAN.npz "
            f"(a scan NPZ with {c.N}x{c.N} patterns, or a feed NPZ of float32[B, {c.C}, {c.N}, {c.N}])"
        )

    return run_cli(body)
