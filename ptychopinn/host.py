"""``predict``, ``verify`` and ``pack``: the inference host's commands, torch-free.

``--artifacts`` is a folder or an archive from ``pack``, resolved in one place
(:func:`export.archive.open_artifacts`). Imports NumPy, ONNX Runtime, matplotlib (Agg, for the
PNGs) and the standard-library CLI edge of :mod:`ptycho_torch`, so an inference host without
torch or lightning runs it (``.importlinter``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from export.archive import open_artifacts, pack_artifacts
from export.predict import Prediction, PredictOptions, Predictor
from export.verify import VerifyOptions, verify_artifacts
from ptycho_torch.cli import UsageError
from ptycho_torch.recon_files import (
    RECONSTRUCTION_FILES,
    check_out_folder,
    write_folder_atomically,
    write_reconstruction,
)
from ptycho_torch.scan_reader import ScanReader
from ptychopinn.command import CommandLine
from ptychopinn.options import ConfigOptions

__all__ = ["PACK", "PREDICT", "VERIFY", "reconstruct"]

PREDICTION_JSON = "prediction.json"
OUTPUT_FILES = (*RECONSTRUCTION_FILES, PREDICTION_JSON)
PREDICT_OPTIONS = ConfigOptions(PredictOptions)
VERIFY_OPTIONS = ConfigOptions(VerifyOptions)
_ARTIFACTS_HELP = (
    "folder written by `python -m export build`, or an archive from `python -m export pack`"
)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help=f"{_ARTIFACTS_HELP} (default: artifacts)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="scan .npz (data contract, or a PtychoPINN/Ptychodus diff3d training file); with "
        "--product: a Ptychodus diffraction file (.npz, .h5) or a training .npz",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (replaced whole); with --product: the Ptychodus product to write (.h5)",
    )
    parser.add_argument(
        "--product",
        type=Path,
        help="a Ptychodus product file (.h5): reconstruct on its positions and object geometry "
        "and write OUT.h5 (needs the 'ptychodus' extra; docs/ptychodus.md)",
    )
    PREDICT_OPTIONS.add_to(parser)


def _predict(args: argparse.Namespace) -> None:
    options: PredictOptions = PREDICT_OPTIONS.build(args)  # before any file is read
    if args.product is not None:
        return _predict_product(args, options)
    if args.out.suffix.lower() in (".h5", ".hdf5"):
        raise UsageError(
            f"--out {args.out}: a Ptychodus product is written only with --product PRODUCT.h5 "
            "(its positions and object geometry); without it --out is a folder"
        )
    reconstruct(
        args, lambda directory: Predictor(directory, device=options.device), options.progress_every
    )


def reconstruct(
    args: argparse.Namespace,
    predictor_for: Callable[[Path], Predictor],
    progress_every: float,
) -> None:
    """``--data`` through the predictor of ``--artifacts``, written to ``--out`` as ``predict``
    writes it (``client`` runs it with a served model as the predictor's runner)."""
    check_out_folder(args.out, OUTPUT_FILES)  # before the model runs, not after
    with open_artifacts(args.artifacts) as directory:  # an archive: unpacked until the end
        predictor = predictor_for(directory)
        progress = _Progress(progress_every)
        with ScanReader(args.data) as scan:
            prediction = predictor.predict(scan, progress)
        progress.close()
    record = {
        "artifacts": str(args.artifacts.resolve()),
        "weights_sha256": predictor.manifest.checkpoint.weights_sha256,
        "data": str(args.data.resolve()),
        "object_shape": list(prediction.stitched.obj.shape),
        **prediction.stats.to_dict(),
    }

    def write(folder: Path) -> list[Path]:
        paths = write_reconstruction(prediction.stitched, folder)
        (folder / PREDICTION_JSON).write_text(json.dumps(record, indent=2) + "\n")
        return [*paths, folder / PREDICTION_JSON]

    written = write_folder_atomically(args.out, write, OUTPUT_FILES)
    print(f"{prediction.stats.summary()}; {_coverage(prediction)}")
    print(f"wrote {args.out}/ ({', '.join(p.name for p in written)})")


def _predict_product(args: argparse.Namespace, options: PredictOptions) -> None:
    from export.ptychodus.files import predict_product  # no ptychodus: exit 3, its install line

    progress = _Progress(options.progress_every)
    result = predict_product(
        args.artifacts, args.product, args.data, args.out, options.device, progress
    )
    progress.close()
    for line in result.lines():
        print(line)


def _coverage(prediction: Prediction) -> str:
    weight = prediction.stitched.weight
    shape = "x".join(map(str, weight.shape))
    return f"object {shape}, {100 * float((weight > 0).mean()):.0f}% covered"


class _Progress:
    """``predict: 2048/10000 patterns (20%), 181 patterns/s, 44 s left`` on stderr, every
    ``every`` seconds once a run has taken that long (short scans print nothing)."""

    def __init__(self, every: float, stream: TextIO | None = None) -> None:
        self.every, self.stream = every, stream or sys.stderr  # the stderr of now, not of import
        self.start = self.last = time.perf_counter()
        self.shown = False
        self.tty = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.every or (now - self.last < self.every and done < total):
            return
        if done == total and not self.shown:
            return
        rate = done / max(now - self.start, 1e-9)
        left = (total - done) / rate if rate > 0 else 0.0
        line = (
            f"predict: {done}/{total} patterns ({100 * done // total}%), {rate:.0f} patterns/s, "
            f"{left:.0f} s left"
        )
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()
        self.last, self.shown = now, True

    def close(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")


PREDICT = CommandLine(
    "Reconstruct a data-contract scan NPZ with the artifacts' ONNX model; writes "
    "OUT/reconstruction.npz, amplitude.png, phase.png and prediction.json atomically.",
    _predict_arguments,
    _predict,
    log_names=True,
)


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", type=Path, help=_ARTIFACTS_HELP)
    VERIFY_OPTIONS.add_to(parser)


def _verify(args: argparse.Namespace) -> None:
    options = VERIFY_OPTIONS.build(args)  # before any file is read
    with open_artifacts(args.artifacts) as directory:
        report = verify_artifacts(directory, options)
    report = dataclasses.replace(report, directory=str(args.artifacts))  # not the unpacked copy
    for line in report.lines():
        print(line)
    report.check()


VERIFY = CommandLine(
    "Check a copied artifacts folder: hashes, manifest, then the parity batch with ONNX Runtime "
    "against the bundled reference.",
    _verify_arguments,
    _verify,
    log_names=True,
)


def _pack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", type=Path, help="folder written by `python -m export build`")
    parser.add_argument("--out", type=Path, required=True, help="archive to write (.tar.gz)")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --out that differs"
    )


def _pack(args: argparse.Namespace) -> None:
    for line in pack_artifacts(args.artifacts, args.out, force=args.force).lines():
        print(line)


PACK = CommandLine(
    "Check an artifacts folder against its manifest and write its files (the published link "
    "followed) into one .tar.gz, atomically; `verify` and `predict` read the archive as "
    "--artifacts.",
    _pack_arguments,
    _pack,
    log_names=True,
)
