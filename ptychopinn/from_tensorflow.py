"""``import-tf``, ``import-keras`` and ``import-reference``: models and arrays from TensorFlow.

``import-tf`` reads the original TensorFlow PtychoPINN's files (zip, HDF5, JSON, plain-data
pickles; no TensorFlow, no code from the files) into a checkpoint; ``import-keras`` converts
weights saved from the twin's layout; ``import-reference`` turns the original's arrays into a
reference and a feed for ``build``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from parity.import_keras import ImportKerasOptions
from parity.import_reference import ImportReferenceOptions
from ptycho_torch.errors import ExitCode
from ptychopinn.command import CommandLine
from ptychopinn.options import ConfigOptions

__all__ = ["IMPORT_KERAS", "IMPORT_REFERENCE", "IMPORT_TF"]

IMPORT_KERAS_OPTIONS = ConfigOptions(ImportKerasOptions)
IMPORT_REFERENCE_OPTIONS = ConfigOptions(ImportReferenceOptions, flags={"source": "--from"})


def _import_tf_arguments(p: argparse.ArgumentParser) -> None:
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


def _import_tf(args: argparse.Namespace) -> None:
    from ptycho_torch.import_tf.given import import_given
    from ptycho_torch.import_tf.importer import write_checkpoint

    imported = import_given(
        args.archive,
        args.weights,
        config=args.config,
        intensity_scale=args.intensity_scale,
        probe=args.probe,
        out=str(args.out),
    )
    write_checkpoint(imported.model, args.out)
    c = imported.model.config
    print(
        f"imported {imported.n_convs} convs (N={c.N}, gridsize={c.gridsize}, "
        f"n_filters_scale={c.n_filters_scale}) -> {args.out}\n"
        f"next: python -m export build --checkpoint {args.out} --inputs SCAN.npz "
        f"(a scan NPZ with {c.N}x{c.N} patterns, or a feed NPZ of float32[B, {c.C}, {c.N}, {c.N}])"
    )


IMPORT_TF = CommandLine(
    "Import a model trained by the original TensorFlow PtychoPINN into a checkpoint for "
    "`python -m export build --checkpoint`. Reads zip/HDF5/JSON only and unpickles plain "
    "data only: no TensorFlow, no code from the files.",
    _import_tf_arguments,
    _import_tf,
    log_names=True,
)


def _import_keras(args: argparse.Namespace) -> int:
    from parity.import_keras import import_keras

    print(f"wrote {import_keras(IMPORT_KERAS_OPTIONS.build(args))}")
    return ExitCode.PASS


IMPORT_KERAS = CommandLine(
    "Convert Keras weights saved from the twin's layout, with a ModelConfig JSON, into a "
    "PyTorch model file (the original PtychoPINN's files: import-tf).",
    IMPORT_KERAS_OPTIONS.add_to,
    _import_keras,
)


def _import_reference(args: argparse.Namespace) -> int:
    from parity.import_reference import import_reference

    options: ImportReferenceOptions = IMPORT_REFERENCE_OPTIONS.build(args)
    reference, feed = import_reference(
        options.source[1], options.out, options.head, options.checkpoint, options.inputs_out
    )
    prov = reference.provenance
    weights = prov["weights_sha256"]
    shapes = ", ".join(f"{k} float32{list(v.shape)}" for k, v in reference.outputs.items())
    print(
        f"wrote {options.out} and {options.out.with_suffix('.json').name}: {prov['head']} head "
        f"of case {prov['case']} ({shapes}; weights {weights[:12] if weights else 'UNKNOWN'}, "
        f"inputs {prov['inputs_sha256'][:12]})"
    )
    print(f"wrote feed {feed}")
    if not weights:
        print(
            "note: no --checkpoint, so no weights digest: parity against this reference stops "
            "as stale (exit 4) until it is re-imported with --checkpoint"
        )
    print(
        f"next: python -m export build --checkpoint {options.checkpoint or 'MODEL.pt'} "
        f"--inputs {feed} --reference {options.out} --head {prov['head']} --out DIR"
    )
    return ExitCode.PASS


IMPORT_REFERENCE = CommandLine(
    "Turn arrays written by the original TensorFlow PtychoPINN into reference.npz + "
    "reference.json and a feed NPZ.",
    IMPORT_REFERENCE_OPTIONS.add_to,
    _import_reference,
)
