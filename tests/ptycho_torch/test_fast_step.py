"""The speed settings change how a training step runs, never what it computes (issue 23)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from ptycho_torch.config import PLAIN_SPEED, DataConfig, ModelConfig, TrainConfig
from ptycho_torch.data import PtychoDataModule
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.prepare import intensity_scale
from ptycho_torch.scan import load_npz

LR = 2e-3


def _train_steps(scan_npz: Path, steps: int, **speed: Any) -> tuple[dict, dict, list[float]]:
    """First-step gradients, weights after ``steps`` optimizer steps, and the losses, from the
    same seed and batches."""
    data = load_npz(scan_npz)
    model_config = ModelConfig(
        N=64, n_filters_scale=1, intensity_scale=intensity_scale(data.diffraction)
    )
    data_config = DataConfig(batch_size=4, val_fraction=0.25)
    train_config = dataclasses.replace(TrainConfig(learning_rate=LR), **speed)
    torch.manual_seed(0)
    module = PtychoLightning(
        model_config.to_dict(), data_config.to_dict(), train_config.to_dict(), probe=data.probe
    )
    module.setup("fit")
    optimizer = module.configure_optimizers()
    batches = PtychoDataModule(
        data, 1, data_config, model_config.intensity_scale, in_memory=train_config.in_memory_data
    ).train_dataloader()
    losses: list[float] = []
    grads: dict[str, torch.Tensor] = {}
    for _, (diffraction, positions) in zip(range(steps), batches):
        loss = module.training_loss(diffraction, positions)
        optimizer.zero_grad()
        loss.backward()
        grads = grads or {
            k: p.grad.clone() for k, p in module.model.named_parameters() if p.grad is not None
        }
        optimizer.step()
        losses.append(float(loss.detach()))
    module.on_fit_end()
    return grads, {k: v.clone() for k, v in module.model.state_dict().items()}, losses


def test_default_speed_settings_compute_the_plain_steps_update(scan_npz: Path) -> None:
    plain_grads, plain, plain_losses = _train_steps(scan_npz, 3, **PLAIN_SPEED)
    grads, fast, losses = _train_steps(scan_npz, 3)
    assert TrainConfig().channels_last and TrainConfig().fused_adam  # the defaults: the fast path
    torch.testing.assert_close(losses, plain_losses, rtol=1e-5, atol=0)
    for name, grad in plain_grads.items():  # the same gradient, up to a summation order
        torch.testing.assert_close(
            grads[name], grad, rtol=1e-4, atol=1e-5 * float(grad.abs().max()), msg=name
        )
    off, total = 0, 0
    for name, weights in plain.items():
        assert fast[name].is_contiguous(), f"{name}: the layout is restored after training"
        # Adam divides each gradient by its own magnitude, so where a gradient is at round-off
        # level its update can differ by up to one step; elsewhere the weights agree to 1e-4
        assert float((fast[name] - weights).abs().max()) <= LR / 4, name
        off += int(((fast[name] - weights).abs() > 1e-4 * weights.abs() + 1e-6).sum())
        total += weights.numel()
    assert off <= 1e-3 * total, f"{off} of {total} weights differ by more than 1e-4"


def test_in_memory_batches_equal_the_per_sample_batches(scan_npz: Path) -> None:
    data = load_npz(scan_npz)
    config = DataConfig(batch_size=4, val_fraction=0.25)
    plain = PtychoDataModule(data, 1, config, 3.0)
    fast = PtychoDataModule(data, 1, config, 3.0, in_memory=True)
    for loader in ("train_dataloader", "val_dataloader"):
        for (x0, p0), (x1, p1) in zip(getattr(plain, loader)(), getattr(fast, loader)()):
            assert torch.equal(x0, x1) and torch.equal(p0, p1)
            assert x1.dtype == torch.float32 and x1.shape[1:] == (1, 64, 64)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


def test_each_speed_setting_has_an_option_to_turn_it_off() -> None:
    import argparse

    from ptychopinn import train

    parser = argparse.ArgumentParser()
    train.TRAIN.add_arguments(parser)
    on = [name for name in PLAIN_SPEED if getattr(TrainConfig(), name)]  # compile is off already
    off = [f"--no-{name.replace('_', '-')}" for name in on]
    args = parser.parse_args(["--preset", "demo", "--out", "x", *off, "--precision", "bf16-mixed"])
    config = train.TRAINING_OPTIONS.build(args, **train.SPEED_OPTIONS.given(args))
    plain: dict[str, Any] = dict(PLAIN_SPEED)
    assert config == dataclasses.replace(TrainConfig(), **plain, precision="bf16-mixed")


def test_a_compiler_failure_trains_on_eagerly_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ptycho_torch.fast_step import TrainingLoss
    from ptycho_torch.model import PtychoPINN

    def failing_compile(fn: Any) -> Any:
        def compiled(*args: Any) -> Any:
            raise RuntimeError("backend compiler failed\nwith a long inductor log")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    torch.manual_seed(0)
    model = PtychoPINN(ModelConfig(N=64, n_filters_scale=1))
    x = torch.rand(2, 1, 64, 64) + 0.1
    positions = torch.zeros(2, 1, 2)
    loss = TrainingLoss(model, TrainConfig(compile=True))
    with caplog.at_level("WARNING"):
        first, second = loss(x, positions), loss(x, positions)
    eager = TrainingLoss(model, TrainConfig(compile=False))(x, positions)
    assert torch.equal(first, eager) and torch.equal(second, eager)
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert warnings == [
        "torch.compile failed (RuntimeError: backend compiler failed); training continues "
        "without it (--no-compile turns it off)"
    ]
