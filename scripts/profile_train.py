"""Profile the training steps of ``python -m export train`` (Lightning, the real loop).

    python scripts/profile_train.py [--threads 2] [--steps 200] [--warmup 20] [--plain] \
        [--n-images 512] [--n-filters-scale 2] [--batch-size 16]

Simulates a scan (N=64, gridsize 1, seed 0; 512 images give 486 training patterns per epoch at
the default 5% validation, as the original's runs in issue 23), trains on it with
:func:`ptycho_torch.train.train` and profiles global steps ``[warmup, warmup + steps)`` with
:class:`bench.train_profile.ProfileWindow`: Markdown tables (parts of a step, convolutions by
shape) on stdout, with the load average before and after. Epoch ends (validation, checkpoints)
fall outside the profiled steps. ``--plain`` turns every speed setting off (``PLAIN_SPEED``: the
step as first written); OpenMP waits as ``train`` sets it (``GOMP_SPINCOUNT=300000``, libgomp's
own default, in the environment gives the old wait).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile

from ptycho_torch.thread_option import training_process

training_process()  # as `train` does, before torch loads

import torch  # noqa: E402

from bench.train_profile import ProfileWindow  # noqa: E402
from ptycho_torch.config import PLAIN_SPEED, DataConfig, ModelConfig, TrainConfig  # noqa: E402
from ptycho_torch.prepare import intensity_scale  # noqa: E402
from ptycho_torch.simulate import SimulationConfig, simulate_scan  # noqa: E402
from ptycho_torch.train import train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--n-images", type=int, default=512)
    p.add_argument("--n-filters-scale", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--plain", action="store_true", help="every speed setting off")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = simulate_scan(SimulationConfig(seed=0, n_images=args.n_images, N=64))
    data_config = DataConfig(batch_size=args.batch_size)
    per_epoch = math.ceil(round(args.n_images * (1 - data_config.val_fraction)) / args.batch_size)
    epochs = math.ceil((args.warmup + args.steps) / per_epoch) + 1
    model_config = ModelConfig(
        N=64,
        n_filters_scale=args.n_filters_scale,
        intensity_scale=intensity_scale(data.diffraction),
    )
    train_config = TrainConfig(epochs=epochs, lr_factor=1.0, early_stop_patience=0)
    if args.plain:
        train_config = dataclasses.replace(train_config, **PLAIN_SPEED)
    window = ProfileWindow(args.warmup, args.steps)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        trainer = {"enable_progress_bar": False, "callbacks": [window], "accelerator": "cpu"}
        train(data, out, model_config, data_config, train_config, trainer)
    profile = window.profile
    print(
        f"threads {torch.get_num_threads()}, {profile.steps} steps profiled after {args.warmup}, "
        f"N=64, s={args.n_filters_scale}, batch {args.batch_size}, "
        f"{'plain' if args.plain else 'default'} speed settings, OpenMP wait "
        f"{os.environ.get('OMP_WAIT_POLICY') or os.environ.get('GOMP_SPINCOUNT')}; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print(profile.table())
    print()
    print(profile.convolution_table())


if __name__ == "__main__":
    main()
