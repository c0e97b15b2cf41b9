"""``python -m parity.bench``: latency of every backend on the artifacts' fixed batch, side by side.

Runs each runner interleaved (round robin, after warm-up) so that machine noise hits all of
them alike, and prints median and p90 per batch, throughput, and the ratio to eager. Figures,
never assertions: the machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.errors import EnvironmentUnavailable, ParityError

__all__ = ["BenchOptions", "benchmark"]


@dataclass(frozen=True)
class BenchOptions:
    """What ``python -m parity.bench`` measures (each default lives here)."""

    artifacts: Path = field(
        default=Path("artifacts"), metadata={"help": "folder written by `python -m export build`"}
    )
    device: str = field(default="cpu", metadata={"help": "device", "choices": ("cpu", "cuda")})
    repeats: int = field(default=20, metadata={"help": "timed batches per backend"})
    warmup: int = field(default=3, metadata={"help": "untimed batches per backend first"})

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ParityError(f"--repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise ParityError(f"--warmup must be >= 0, got {self.warmup}")


def benchmark(
    artifacts: Path, device: str = "cpu", repeats: int = 20, warmup: int = 3
) -> list[dict[str, object]]:
    """Median/p90 seconds per batch for eager, TorchScript, .pt2 and ONNX Runtime on ``device``.

    On CUDA, an ONNX Runtime whose CUDA provider does not come up is a row with ``unavailable``
    (the reason) instead of timings; the command then exits 3.
    """
    from export.manifest import read_manifest
    from export.signature import Signature
    from parity.pairs import make_runners
    from parity.precision import apply_precision_policy

    apply_precision_policy()
    manifest = read_manifest(artifacts)  # benchmark what was built, nothing else
    signature = Signature.from_dict(manifest.signature)
    with np.load(artifacts / "inputs.npz", allow_pickle=False) as data:
        feed = {k: data[k] for k in data.files}
    runners = make_runners(
        artifacts, manifest.weights_path(artifacts), signature, [device], None, tf_twin=False
    )
    missing: list[dict[str, object]] = []  # ONNX Runtime's CUDA provider that did not come up
    with ExitStack() as stack:  # every activated runner is deactivated, whatever fails
        for r in list(runners):
            try:
                stack.enter_context(r)
            except EnvironmentUnavailable as exc:
                if not (device == "cuda" and r.kind == "onnxruntime"):
                    raise
                runners.remove(r)  # torch's CUDA runners are still timed; the CLI exits 3
                missing.append({"runner": r.name, "unavailable": str(exc)})
        times: dict[str, list[float]] = {r.name: [] for r in runners}
        for _ in range(warmup):
            for r in runners:
                r.infer(feed)
        for _ in range(repeats):
            for r in runners:
                start = time.perf_counter()
                r.infer(feed)
                times[r.name].append(time.perf_counter() - start)
    batch = signature.inputs[0].shape[0]
    base = statistics.median(times[runners[0].name])
    rows = []
    for r in runners:
        t = sorted(times[r.name])
        median = statistics.median(t)
        rows.append(
            {
                "runner": r.name,
                "providers": r.providers,
                "median_ms": 1e3 * median,
                "p90_ms": 1e3 * t[int(0.9 * (len(t) - 1))],
                "patterns_per_s": batch / median,
                "speedup_vs_eager": base / median,
            }
        )
    return rows + missing


if __name__ == "__main__":  # `python -m parity.bench`: the command lives in parity.bench_cli
    from parity.bench_cli import main

    sys.exit(main())
