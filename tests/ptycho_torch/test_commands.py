"""The train, infer and simulate commands in-process: options validated first, one error line."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptychopinn import train
from tests.conftest import command_main


def _train_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train.TRAIN.add_arguments(parser)
    return parser.parse_args(argv)


def _single_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("value", ["0", "-3"])
@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("--epochs", "TrainConfig.epochs"),
        ("--gridsize", "ModelConfig.gridsize"),
        ("--batch-size", "DataConfig.batch_size"),
        ("--n-filters-scale", "ModelConfig.n_filters_scale"),
    ],
)
def test_train_rejects_a_non_positive_option_before_any_data(
    option: str, field: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --preset demo would simulate a scan first if the options were not checked before
    code = command_main("train")(
        ["--preset", "demo", "--out", str(tmp_path / "run"), option, value]
    )
    line = _single_error_line(capsys.readouterr().err)
    assert code == 2
    assert line.startswith(f"error: {option} {value}: {field} must be"), line
    assert not (tmp_path / "run").exists()


def test_train_demo_preset_replaces_defaults_and_given_options_replace_the_preset() -> None:
    from ptycho_torch.train import DEMO_PRESET as preset

    args = _train_args(["--preset", "demo", "--out", "x", "--epochs", "3"])
    assert train.TRAINING_OPTIONS.build(args, preset=preset) == TrainConfig(
        epochs=3, learning_rate=2e-3, lr_factor=1.0, early_stop_patience=0
    )
    assert train.MODEL_OPTIONS.build(args, preset=preset) == ModelConfig(n_filters_scale=1)
    plain = _train_args(["--data", "s.npz", "--out", "x", "--seed", "5"])
    assert train.TRAINING_OPTIONS.build(plain) == TrainConfig(seed=5)
    assert train.DATA_OPTIONS.build(plain, seed=5) == DataConfig(seed=5)
    assert train.MODEL_OPTIONS.build(plain) == ModelConfig()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_infer_rejects_a_non_positive_batch_size_before_reading_files(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.pt")
    argv = ["--checkpoint", missing, "--data", missing, "--out", str(tmp_path / "o")]
    code = command_main("infer")([*argv, "--batch-size", value])
    line = _single_error_line(capsys.readouterr().err)
    assert code == 2
    assert (
        line
        == f"error: --batch-size {value}: InferConfig.batch_size must be an int >= 1, got {value}"
    )


def test_simulate_writes_the_options_it_was_given(tmp_path: Path) -> None:
    out = tmp_path / "scan.npz"
    simulate = command_main("simulate")
    assert simulate(["--out", str(out), "--n-images", "4", "--dtype", "float64"]) == 0
    with np.load(out) as f:
        assert f["diffraction"].shape == (4, 64, 64) and f["diffraction"].dtype == np.float64


def test_simulate_names_the_rejected_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = command_main("simulate")(["--out", str(tmp_path / "x.npz"), "--photons", "-1"])
    line = _single_error_line(capsys.readouterr().err)
    assert code == 2
    assert line == "error: --photons -1.0: SimulationConfig.photons must be > 0, got -1.0"
