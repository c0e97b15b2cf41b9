"""``python -m ptycho_torch.import_tf``: arguments in, checkpoint out, errors to exit code 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from ptycho_torch.cli import run_cli
from ptycho_torch.import_tf.importer import ImportedModel, write_checkpoint
from ptycho_torch.import_tf.originals import import_given

__all__ = ["main"]


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
    return import_given(
        args.archive,
        args.weights,
        config=args.config,
        intensity_scale=args.intensity_scale,
        probe=args.probe,
        out=str(args.out),
    )
