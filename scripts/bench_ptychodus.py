"""Throughput of the Ptychodus path next to ``export predict`` on the same scan (CPU), in one run.

    python scripts/bench_ptychodus.py [--n-images 500] [--batch 8] [--repeats 3] [--work DIR]

Builds the bundled demo model's artifacts (``--batch``, no parity), simulates a scan of
``--n-images`` patterns and writes it twice: as our NPZ (``scan.npz``) and with Ptychodus's own
writers (``product.h5`` by ``save_product``, ``patterns.npz`` by its NPZ diffraction writer, on an
object geometry of 10 nm pixels), then times, each in a fresh process, alternating, ``--repeats``
times (the median is printed):

- ``predict``: ``Predictor`` + ``ScanReader`` + ``predict`` on ``scan.npz`` (what ``export
  predict`` runs), after one warm-up run in the same process;
- ``reconstructor``: ``OnnxReconstructor.reconstruct`` on the ``ReconstructInput`` (the model
  loaded and verified once before; one warm-up run);
- ``subprocess``: Ptychodus's ``SubprocessReconstructor`` from ``PtychoPINNOnnxLibrary``: one
  ``reconstruct()`` (spawn, imports, verify, predict, the product back through the queue);
- ``cli npz`` and ``cli product``: ``python -m export predict`` end to end (process start to
  exit) with ``--data scan.npz --out DIR`` and ``--product product.h5 --data patterns.npz --out
  OUT.h5``.

Prints one line per way (seconds, patterns/s) and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIXEL = 1e-8


def _prepare(work: Path, n_images: int, batch: int) -> dict[str, Path]:
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    paths = {k: work / v for k, v in (("scan", "scan.npz"), ("product", "product.h5"),
                                      ("patterns", "patterns.npz"), ("artifacts", "artifacts"))}  # fmt: skip
    if not paths["scan"].exists():
        scan = simulate_scan(SimulationConfig(seed=0, n_images=n_images))
        write_npz(scan, paths["scan"])
        _write_ptychodus(scan, paths["product"], paths["patterns"])
    if not (paths["artifacts"] / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "export", "build", "--inputs", str(paths["scan"])]
        cmd += ["--batch", str(batch), "--reference", "none", "--no-parity"]
        cmd += ["--out", str(paths["artifacts"])]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return paths


def _write_ptychodus(scan: object, product_path: Path, patterns_path: Path) -> None:
    import numpy as np
    from ptychodus.api.diffraction import (
        DiffractionDatasetLayoutNode,
        DiffractionMetadata,
        SimpleDiffractionArray,
        SimpleDiffractionDataset,
    )
    from ptychodus.api.geometry import ImageExtent, PixelGeometry
    from ptychodus.api.io import save_product
    from ptychodus.api.object import Object, ObjectCenter
    from ptychodus.api.probe import ProbeSequence
    from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
    from ptychodus.api.product import Product, ProductMetadata
    from ptychodus.plugins.npz_diffraction_file import NPZDiffractionFileIO

    side = scan.obj.shape[0]  # type: ignore[attr-defined]
    x_m = PIXEL * (scan.xcoords - (side - 1) / 2)  # type: ignore[attr-defined]
    y_m = PIXEL * (scan.ycoords - (side - 1) / 2)  # type: ignore[attr-defined]
    pixels = PixelGeometry(width_m=PIXEL, height_m=PIXEL)
    product = Product(
        ProductMetadata("bench", "", 2.0, 10000.0, 0.0, 0.0, 0.0, 0.0),
        ProbePositionSequence(
            [ProbePosition(i, float(x), float(y)) for i, (x, y) in enumerate(zip(x_m, y_m))]
        ),
        ProbeSequence(scan.probe.astype(np.complex64), None, pixels),  # type: ignore[attr-defined]
        Object(np.ones((side, side), np.complex64), pixels, ObjectCenter(0.0, 0.0)),
        [],
    )
    save_product(product_path, product)
    patterns = np.square(scan.diffraction.astype(np.float32))  # type: ignore[attr-defined]
    n, h, w = patterns.shape
    dataset = SimpleDiffractionDataset(
        DiffractionMetadata([n], patterns.dtype, ImageExtent(w, h)),
        DiffractionDatasetLayoutNode.create_root(),
        [SimpleDiffractionArray("bench", np.arange(n), patterns)],
    )
    NPZDiffractionFileIO().write(patterns_path, dataset)


def _input(paths: dict[str, Path]) -> object:
    import numpy as np
    from ptychodus.api.io import load_product
    from ptychodus.api.reconstruct import ReconstructInput

    with np.load(paths["patterns"]) as f:
        return ReconstructInput(f["patterns"], f["bad_pixels"], load_product(paths["product"]))


def _time(way: str, paths: dict[str, Path]) -> float:
    """Seconds for one run of ``way`` (in this process; the caller started it fresh)."""
    if way == "predict":
        from export.predict import Predictor
        from ptycho_torch.scan_reader import ScanReader

        def run() -> None:
            with ScanReader(paths["scan"]) as reader:
                Predictor(paths["artifacts"]).predict(reader)

    elif way == "reconstructor":
        from export.ptychodus.reconstructor import OnnxReconstructor

        reconstructor = OnnxReconstructor()
        reconstructor.load_model_from_file(paths["artifacts"])
        inp = _input(paths)

        def run() -> None:
            list(reconstructor.reconstruct(inp))  # type: ignore[arg-type]

    elif way == "subprocess":
        from export.ptychodus.library import PtychoPINNOnnxLibrary

        (child,) = PtychoPINNOnnxLibrary()
        child.load_model_from_file(paths["artifacts"])
        inp = _input(paths)
        start = time.perf_counter()
        list(child.reconstruct(inp))  # type: ignore[arg-type]
        return time.perf_counter() - start
    else:
        raise ValueError(way)
    run()  # warm-up
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _cli(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "export", "predict", *args], check=True,
                   capture_output=True, cwd=ROOT)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: time one way, print JSON
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ptychodus-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = _prepare(work, args.n_images, args.batch)
    if args.child:
        print(json.dumps(_time(args.child, paths)))
        return
    print(f"load before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} logical CPUs); work {work}")
    ways = ["predict", "reconstructor", "subprocess", "cli npz", "cli product"]
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(args.repeats):
        for way in ways:
            if way == "cli npz":
                seconds[way].append(_cli(["--artifacts", str(paths["artifacts"]), "--data",
                                          str(paths["scan"]), "--out", str(work / "recon")]))  # fmt: skip
            elif way == "cli product":
                seconds[way].append(_cli(["--artifacts", str(paths["artifacts"]), "--product",
                                          str(paths["product"]), "--data", str(paths["patterns"]),
                                          "--out", str(work / "recon.h5")]))  # fmt: skip
            else:
                cmd = [sys.executable, __file__, "--work", str(work), "--child", way,
                       "--n-images", str(args.n_images), "--batch", str(args.batch)]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
                seconds[way].append(float(out.stdout.strip().splitlines()[-1]))
    for way in ways:
        s = statistics.median(seconds[way])
        print(f"{way:14s} {s:6.2f} s  {args.n_images / s:6.1f} patterns/s  (runs: "
              f"{', '.join(f'{t:.2f}' for t in seconds[way])})")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
