"""How well ``--threads auto``'s probe convolution predicts the model's gain from more threads.

Times, interleaved over rounds (:func:`ptycho_torch.threads.interleave`: each round runs every
workload at every thread count, starting each round with a different one), the old probe
(32 -> 32 channels, batch 8), the current one (64 -> 64, batch 8;
:func:`ptycho_torch.threads._measure`), and the model's inference forward and training step at
batch 16, at 1 .. the physical cores::

    python scripts/bench_model.py --N 64 --n-filters-scale 2 --batch 32 --out /tmp/m64
    python scripts/bench_thread_probe.py --model /tmp/m64/model.pt --feed /tmp/m64/feed.npz

Prints the median ms per count and the speedup of the most threads over one. Figures, never
assertions: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ptycho_torch.checkpoint import load_model
from ptycho_torch.threads import at_threads, interleave, physical_cores


def _conv_step(channels: int, batch: int) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, 32, 32, generator=generator, requires_grad=True)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    return lambda: conv(x).sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.pt (bench_model.py)")
    parser.add_argument("--feed", type=Path, required=True, help="feed.npz with 'diffraction'")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    model = load_model(args.model)
    with np.load(args.feed, allow_pickle=False) as feed:
        x = torch.from_numpy(np.ascontiguousarray(feed["diffraction"][: args.batch]))

    def infer() -> None:
        with torch.inference_mode():
            model.predict(x)

    def train() -> None:
        amplitude, phase = model.predict(x)
        (amplitude.sum() + phase.sum()).backward()

    work = {
        "old probe 32ch x8": _conv_step(32, 8),
        "probe 64ch x8": _conv_step(64, 8),
        f"model inference b{args.batch}": infer,
        f"model training b{args.batch}": train,
    }
    counts = list(range(1, physical_cores() + 1))
    candidates = {f"{name} @{n}": at_threads(n, fn) for name, fn in work.items() for n in counts}
    samples = interleave(candidates, 0.0, args.rounds)  # one warm-up round, then --rounds rounds
    times = {name: {n: samples[f"{name} @{n}"].seconds for n in counts} for name in work}
    for name, by_count in times.items():
        ms = {n: 1e3 * float(np.median(t)) for n, t in by_count.items()}
        cells = "  ".join(f"{n} thread{'s' if n > 1 else ''} {v:8.1f} ms" for n, v in ms.items())
        print(f"{name:24s} {cells}  speedup {ms[counts[0]] / ms[counts[-1]]:.2f}")


if __name__ == "__main__":
    main()
