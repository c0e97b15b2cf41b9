"""An untrained PtychoPINN checkpoint and a feed of its size, for benchmarks at any N and scale.

Speed does not depend on the weights, so the scaling figures use random models::

    python scripts/bench_model.py --N 128 --n-filters-scale 2 --batch 32 --out /tmp/m128
    python -m export build --checkpoint /tmp/m128/model.pt --inputs /tmp/m128/feed.npz \\
        --out /tmp/m128/artifacts --reference none --no-parity
    python -m export bench --artifacts /tmp/m128/artifacts --batch 1,8,32

writes ``OUT/model.pt`` (seeded weights, random probe) and ``OUT/feed.npz``
(``diffraction`` float32[batch, C, N, N], random amplitudes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ptycho_torch.checkpoint import save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.model import PtychoPINN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=64, help="pattern size (64, 128, 256)")
    parser.add_argument("--n-filters-scale", type=int, default=2)
    parser.add_argument("--gridsize", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32, help="samples in feed.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n = args.N
    config = ModelConfig(
        N=n, n_filters_scale=args.n_filters_scale, gridsize=args.gridsize, intensity_scale=20.0
    )
    model = PtychoPINN(config, probe=np.exp(1j * rng.random((n, n))) * rng.random((n, n)))
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out / "model.pt")
    diffraction = (rng.random((args.batch, config.C, n, n)) * 30).astype(np.float32)
    np.savez(args.out / "feed.npz", diffraction=diffraction)
    print(
        f"wrote {args.out}/model.pt (N={n}, s={args.n_filters_scale}) and feed.npz {diffraction.shape}"
    )


if __name__ == "__main__":
    main()
