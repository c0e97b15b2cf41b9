"""A training run a user can watch, resume and reproduce (issue 13)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import pytest
import torch

from ptycho_torch.checkpoint import load_model, model_state_sha256
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.errors import CheckpointError
from ptycho_torch.prepare import intensity_scale
from ptycho_torch.scan import load_npz
from ptycho_torch.train import TrainResult, train

QUIET = {"enable_progress_bar": False}


def _run(scan: Path, out: Path, epochs: int, **options: object) -> TrainResult:
    data = load_npz(scan)
    model = ModelConfig(n_filters_scale=1, intensity_scale=intensity_scale(data.diffraction))
    # lr_patience 0: the schedule acts within a few epochs, so resuming must restore it
    config = TrainConfig(epochs=epochs, learning_rate=5e-3, lr_patience=0)
    resume = bool(options.pop("resume", False))
    return train(
        data,
        out,
        model,
        DataConfig(batch_size=4, val_fraction=0.25),
        config,
        {**QUIET, **options},
        resume=resume,
    )


def _digest(path: Path) -> str:
    return model_state_sha256(load_model(path))


class _KillAtEpoch(L.Callback):
    """Stands in for a killed process: fails when ``epoch`` (0-based) starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("killed")


def test_a_run_logs_each_epoch_and_writes_metrics_curve_and_checkpoints(
    scan_npz: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ptycho_torch.train"):
        result = _run(scan_npz, tmp_path, epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 | train_loss ")
    for part in ("val_loss", "lr", "patterns/s", "elapsed", "eta"):
        assert part in lines[1]
    with (tmp_path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    for name in ("train_loss", "val_loss", "lr", "patterns_per_s"):
        assert sorted({r["epoch"] for r in rows if r[name]}) == ["0", "1"], name
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert result.best_checkpoint == tmp_path / "best.ckpt" and result.epochs == 2
    for ckpt in ("last.ckpt", "best.ckpt"):
        raw = torch.load(tmp_path / ckpt, map_location="cpu", weights_only=True)
        run = raw["ptycho_run"]
        assert run["seed"] == 0 and run["threads"] == torch.get_num_threads()
        assert run["torch"] == str(torch.__version__) and run["cpu"]
        load_model(tmp_path / ckpt)


@pytest.mark.slow
def test_two_identical_tiny_runs_give_the_same_weights_digest(
    scan_npz: Path, tmp_path: Path
) -> None:
    a = _run(scan_npz, tmp_path / "a", epochs=2)
    b = _run(scan_npz, tmp_path / "b", epochs=2)
    assert _digest(a.model_file) == _digest(b.model_file)


@pytest.mark.slow
def test_resuming_a_killed_run_finishes_it_as_an_uninterrupted_run_would(
    scan_npz: Path, tmp_path: Path
) -> None:
    full = _run(scan_npz, tmp_path / "full", epochs=4)
    with pytest.raises(RuntimeError, match="killed"):
        _run(scan_npz, tmp_path / "cut", epochs=4, callbacks=[_KillAtEpoch(2)])
    raw = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    assert raw["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2
    resumed = _run(scan_npz, tmp_path / "cut", epochs=4, resume=True)
    assert resumed.epochs == 4
    assert _digest(resumed.model_file) == _digest(full.model_file)
    with (tmp_path / "cut" / "metrics.csv").open() as f:
        epochs = [r["epoch"] for r in csv.DictReader(f) if r["train_loss"]]
    assert epochs == ["0", "1", "2", "3"]  # the first two kept, none twice
    with (tmp_path / "full" / "metrics.csv").open() as f:
        rates = [float(r["lr"]) for r in csv.DictReader(f) if r["lr"]]
    assert rates[-1] < rates[0]  # the schedule acted after the resume point: it was restored


def test_resume_without_a_checkpoint_says_how_to_start(scan_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="without --resume"):
        _run(scan_npz, tmp_path, epochs=1, resume=True)
    assert not tmp_path.joinpath("metrics.csv").exists()
