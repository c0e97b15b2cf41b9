"""Throughput of ``export predict`` next to ``ptycho_torch.infer`` on one scan, and predict's peak
memory on that scan and on scans 10x longer, in one run.

    python scripts/bench_predict.py [--checkpoint export/demo/model.pt] [--n-images 500]
        [--batch 8] [--repeats 2] [--work DIR]

Builds the checkpoint's artifacts (``python -m export build --no-parity``, fixed batch
``--batch``), simulates a scan of ``--n-images`` patterns and two 10x longer ones (one over the
same object, denser; one over a ~10x larger object), then:

- throughput, CPU: ``Predictor`` + ``ScanReader`` + ``predict`` (ONNX Runtime) and
  ``load_model`` + ``load_npz`` + ``ptycho_torch.infer.reconstruct`` (eager PyTorch, its default
  batch 64) on the same scan, each in a fresh process (torch's OpenMP threads would otherwise
  compete with ONNX Runtime's), alternating, ``--repeats`` times; each process runs once to warm
  up and then is timed; the median is printed;
- memory: each scan predicted in a fresh process, which reports its peak RSS (``VmHWM``:
  interpreter, ONNX Runtime, everything) and the peak of NumPy/Python allocations during
  ``predict`` alone (``tracemalloc``).
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
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _simulate(path: Path, n_images: int, object_size: int | None, seed: int) -> Path:
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    if not path.exists():
        config = SimulationConfig(seed=seed, n_images=n_images, object_size=object_size)
        write_npz(simulate_scan(config), path)
    return path


def _build(checkpoint: Path, scan: Path, batch: int, out: Path) -> Path:
    if not (out / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "export", "build", "--checkpoint", str(checkpoint)]
        cmd += ["--inputs", str(scan), "--batch", str(batch), "--reference", "none"]
        cmd += ["--no-parity", "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return out


def _time_predict(artifacts: Path, scan: Path) -> float:
    from export.predict import Predictor
    from ptycho_torch.scan_reader import ScanReader

    start = time.perf_counter()
    predictor = Predictor(artifacts)
    with ScanReader(scan) as reader:
        predictor.predict(reader)
    return time.perf_counter() - start


def _time_infer(checkpoint: Path, scan: Path) -> float:
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.infer import reconstruct
    from ptycho_torch.scan import load_npz

    start = time.perf_counter()
    reconstruct(load_model(checkpoint), load_npz(scan))
    return time.perf_counter() - start


def _memory(artifacts: Path, scan: Path) -> dict[str, float]:
    """In this (fresh) process: predict ``scan``; peak RSS and tracemalloc peak, MiB."""
    from export.predict import Predictor
    from ptycho_torch.scan_reader import ScanReader

    predictor = Predictor(artifacts)
    tracemalloc.start()
    with ScanReader(scan) as reader:
        stitched = predictor.predict(reader).stitched
        n, shape = reader.n, stitched.obj.shape
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    status = Path("/proc/self/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    return {"patterns": n, "object": shape[0], "rss_mib": rss, "traced_mib": traced / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "export" / "demo" / "model.pt")
    p.add_argument("--n-images", type=int, default=500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="keep scans and artifacts here")
    p.add_argument("--memory-of", nargs=2, type=Path, help=argparse.SUPPRESS)  # child modes
    p.add_argument("--time-of", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_of:
        print(json.dumps(_memory(*args.memory_of)))
        return
    if args.time_of:
        what, model, path = args.time_of
        timer = _time_predict if what == "predict" else _time_infer
        timer(Path(model), Path(path))  # warm-up
        print(timer(Path(model), Path(path)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_predict-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.n_images
    scan = _simulate(work / f"scan{n}.npz", n, None, seed=1)
    from ptycho_torch.simulate import SimulationConfig

    side = SimulationConfig(n_images=n).M
    dense = _simulate(work / f"scan{10 * n}-dense.npz", 10 * n, side, seed=2)
    wide = _simulate(work / f"scan{10 * n}-wide.npz", 10 * n, None, seed=3)
    artifacts = _build(args.checkpoint, scan, args.batch, work / "artifacts")
    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min), {os.cpu_count()} CPUs"
    )

    times: dict[str, list[float]] = {"predict": [], "infer": []}
    models = {"predict": artifacts, "infer": args.checkpoint}
    for _ in range(args.repeats):
        for what, model in models.items():
            cmd = [sys.executable, __file__, "--time-of", what, str(model), str(scan)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            times[what].append(float(out.strip().splitlines()[-1]))
    rates = {k: n / statistics.median(v) for k, v in times.items()}
    print(f"throughput on {n} patterns (CPU, median of {args.repeats}, interleaved):")
    print(f"  export predict (ONNX Runtime, B={args.batch}): {rates['predict']:.0f} patterns/s")
    print(f"  ptycho_torch.infer (eager, batch 64): {rates['infer']:.0f} patterns/s")
    print(f"  ratio predict/infer: {rates['predict'] / rates['infer']:.2f}x")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")

    print("peak memory of predict (fresh process each):")
    for path in (scan, dense, wide):
        cmd = [sys.executable, __file__, "--memory-of", str(artifacts), str(path)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        got = json.loads(out.strip().splitlines()[-1])
        print(
            f"  {got['patterns']:>6} patterns, object {got['object']}x{got['object']}: "
            f"peak RSS {got['rss_mib']:.0f} MiB, traced during predict {got['traced_mib']:.1f} MiB "
            f"({path.name}, {path.stat().st_size / 2**20:.0f} MiB on disk)"
        )


if __name__ == "__main__":
    main()
