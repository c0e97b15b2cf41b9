"""``python -m export bench-train``: steady-state training steps, ours against the Keras step.

Every step trains the same network (:class:`~ptycho_torch.config.ModelConfig` at the given N,
gridsize and n_filters_scale) from the same initial weights on the same batch of a simulated
scan, with the Poisson NLL and Adam:

- ``ours`` and its variants: the step training runs (:mod:`ptycho_torch.fast_step`: the loss,
  Adam, the memory layout), with ``TrainConfig``'s speed settings (``default``), every one off
  (``plain``), or with ``precision="bf16-mixed"`` or ``compile`` on;
- ``keras``: the TensorFlow twin's step (:mod:`bench.keras_step`), the stand-in for the original
  TensorFlow PtychoPINN, when TensorFlow is installed.

They are timed interleaved (:func:`ptycho_torch.threads.interleave`: each round runs every step
once, starting with a different one), so other jobs' load hits them alike; then one step of the
first variant is profiled apart for the breakdown (:mod:`bench.train_profile`). Lightning's own
per-step work is not in these steps (``scripts/profile_train.py`` profiles it). Figures, never
assertions: the machines are shared and noisy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.machine_load import read_load
from bench.step_parts import StepProfile
from bench.train_options import VARIANTS, TrainBenchOptions
from bench.train_profile import StepProfiler, label_regions
from bench.train_report import StepTiming, TrainBenchReport
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.data import PtychoDataModule
from ptycho_torch.fast_step import TrainingLoss, make_adam, prepare_network
from ptycho_torch.model import PtychoPINN
from ptycho_torch.prepare import intensity_scale
from ptycho_torch.simulate import SimulationConfig, simulate_scan
from ptycho_torch.threads import Samples, cpu_kind, interleave, set_threads

__all__ = ["TorchStep", "run_train_bench"]

log = logging.getLogger(__name__)


class TorchStep:
    """One of our training steps on a fixed batch; calling it trains one step, returns the loss."""

    def __init__(
        self, model: PtychoPINN, config: TrainConfig, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        prepare_network(model, config)
        self.model, self.config, self.batch = model, config, batch
        self.loss = TrainingLoss(model, config)
        self.optimizer = make_adam([p for p in model.parameters() if p.requires_grad], config)

    def __call__(self) -> float:
        loss = self.loss(*self.batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    @property
    def setting(self) -> str:
        cfg = self.config
        parts = [
            "channels-last" if cfg.channels_last else "NCHW",
            "narrow convs" if cfg.narrow_convs and cfg.channels_last else "oneDNN convs",
            "conv+ReLU fused" if cfg.fused_conv_relu else "ReLU apart",
            "fused Adam" if cfg.fused_adam else "for-loop Adam",
        ]
        parts += ["torch.compile"] if cfg.compile else []
        return ", ".join(parts + [cfg.precision])


def run_train_bench(options: TrainBenchOptions) -> TrainBenchReport:
    """Time the steps interleaved, then profile the first; see the module docstring."""
    threads = set_threads(options.threads).threads
    keras_missing = _start_tensorflow(threads) if options.keras else "not asked (--no-keras)"
    load_before = read_load().averages
    model_config, probe, batch = _batch(options)
    torch.manual_seed(0)
    initial = PtychoPINN(model_config, probe=probe).state_dict()
    steps: dict[str, Callable[[], float]] = {}
    settings: dict[str, str] = {}
    for variant in options.variant_names:
        step = _torch_step(model_config, initial, batch, options, variant)
        name = "ours" if variant == "default" else f"ours, {variant}"
        steps[name], settings[name] = step, step.setting
    if keras_missing is None:
        from bench.keras_step import keras_train_step

        x, pos = (t.numpy() for t in batch)
        steps["keras"] = keras_train_step(model_config, initial, x, pos, options.learning_rate)
        settings["keras"] = "TF twin, Poisson NLL, Keras Adam, tf.function"
    first = {name: step() for name, step in steps.items()}  # builds and compiles too
    samples = interleave(steps, options.seconds, options.rounds, what="bench-train")
    timings = tuple(
        _timing(name, settings[name], s, options.batch, first[name]) for name, s in samples.items()
    )
    profile = _profile(steps[timings[0].name], options.profile_steps)  # type: ignore[arg-type]
    return TrainBenchReport(
        N=options.N,
        n_filters_scale=options.n_filters_scale,
        gridsize=options.gridsize,
        batch=options.batch,
        threads=threads,
        cpu=cpu_kind(),
        load_before=load_before,
        load_after=read_load().averages,
        uptime=_uptime(),
        timings=timings,
        keras_unavailable=keras_missing,
        profile=profile,
        versions=_versions(),
        omp_wait=_omp_wait(),
    )


def _start_tensorflow(threads: int) -> str | None:
    """Set TensorFlow's threads before its first operation; why there is no Keras step, if not."""
    try:
        from bench.keras_step import set_tensorflow_threads

        set_tensorflow_threads(threads)
    except ImportError as exc:
        return f"TensorFlow is not installed ({exc}); pip install tensorflow-cpu"
    return None


def _batch(options: TrainBenchOptions) -> tuple[ModelConfig, np.ndarray, tuple[Any, Any]]:
    """The model configuration, the probe and the first training batch of a simulated scan."""
    c = options.gridsize * options.gridsize
    scan = simulate_scan(
        SimulationConfig(seed=0, n_images=max(4 * options.batch * c, 64), N=options.N)
    )
    scale = intensity_scale(scan.diffraction)
    model_config = ModelConfig(
        N=options.N,
        gridsize=options.gridsize,
        n_filters_scale=options.n_filters_scale,
        intensity_scale=scale,
    )
    data = PtychoDataModule(
        scan, options.gridsize, DataConfig(batch_size=options.batch, val_fraction=0.0), scale
    )
    return model_config, scan.probe, next(iter(data.train_dataloader()))


def _torch_step(
    model_config: ModelConfig,
    initial: dict[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor],
    options: TrainBenchOptions,
    variant: str,
) -> TorchStep:
    model = PtychoPINN(model_config)
    model.load_state_dict(initial)
    config = dataclasses.replace(
        TrainConfig(learning_rate=options.learning_rate), **VARIANTS[variant]
    )
    return TorchStep(model, config, batch)


def _timing(name: str, setting: str, samples: Samples, batch: int, first: float) -> StepTiming:
    p50 = samples.p50 * 1e3
    return StepTiming(
        name=name,
        setting=setting,
        rounds=len(samples),
        p50_ms=p50,
        p10_ms=samples.quantile(0.1) * 1e3,
        p90_ms=samples.quantile(0.9) * 1e3,
        patterns_per_s=batch / p50 * 1e3,
        first_loss=first,
    )


def _profile(step: TorchStep, steps: int) -> StepProfile | None:
    if steps == 0:
        return None
    profiler = StepProfiler()
    with label_regions(step.model):
        profiler.start()
        for _ in range(steps):
            with profiler.step():
                step()
        return profiler.stop()


def _uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return read_load().describe()


def _omp_wait() -> str:
    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    return ", ".join(f"{n}={os.environ[n]}" for n in names if n in os.environ)


def _versions() -> dict[str, str]:
    versions = {"torch": str(torch.__version__)}
    tf = sys.modules.get("tensorflow")  # only when the Keras step ran: importing it takes seconds
    if tf is not None:
        versions["tensorflow"] = str(tf.__version__)
    return versions
