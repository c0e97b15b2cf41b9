"""``python -m parity.bench``: latency of every backend on the artifacts' fixed batch, side by side.

Runs each runner interleaved (round robin, after warm-up) so that machine noise hits all of
them alike, and prints median and p90 per batch, throughput, and the ratio to eager. Figures,
never assertions: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

__all__ = ["benchmark", "main"]


def benchmark(
    artifacts: Path, device: str = "cpu", repeats: int = 20, warmup: int = 3
) -> list[dict[str, object]]:
    """Median/p90 seconds per batch for eager, TorchScript, .pt2 and ONNX Runtime on ``device``."""
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
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    with ExitStack() as stack:  # every activated runner is deactivated, whatever fails
        for r in runners:
            stack.enter_context(r)
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
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from parity.cli import configure_logging
    from parity.errors import ParityError
    from ptycho_torch.cli import run_cli

    configure_logging()

    def run() -> int:
        if args.repeats < 1:
            raise ParityError(f"--repeats must be >= 1, got {args.repeats}")
        rows = benchmark(args.artifacts, args.device, args.repeats)
        print(f"{'runner':<20} {'median ms':>10} {'p90 ms':>10} {'patterns/s':>11} {'vs eager':>9}")
        for row in rows:
            print(
                f"{row['runner']:<20} {row['median_ms']:>10.2f} {row['p90_ms']:>10.2f} "
                f"{row['patterns_per_s']:>11.1f} {row['speedup_vs_eager']:>8.2f}x"
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return 0

    return run_cli(run, configure_logging=False)


if __name__ == "__main__":
    sys.exit(main())
