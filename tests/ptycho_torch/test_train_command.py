"""``python -m export train``: environment checks come first; the schedule's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ptycho_torch.train as training
from ptycho_torch.config import DataConfig, TrainConfig
from ptycho_torch.errors import ExitCode
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.threads import logical_cpus
from tests.conftest import command_main

train_main = command_main("train")  # python -m export train ARGV


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("the demo scan was simulated before the environment check")

    monkeypatch.setattr(training, "demo_data", fail)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--accelerator", "gpu"], id="no-cuda"),
        pytest.param(
            ["--accelerator", "cpu", "--devices", str(logical_cpus() + 1)], id="too-many-devices"
        ),
    ],
)
def test_an_environment_the_machine_cannot_give_exits_3_before_any_work(
    options: list[str],
    tmp_path: Path,
    no_simulation: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "gpu" in options and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "run"
    code = train_main(["--preset", "demo", "--out", str(out), *options])
    assert code == ExitCode.ENVIRONMENT
    assert "error: --" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_threads_other_than_auto_or_a_positive_count_are_a_usage_error(
    value: str, tmp_path: Path, no_simulation: None
) -> None:
    out = tmp_path / "run"
    assert train_main(["--preset", "demo", "--out", str(out), "--threads", value]) == 2
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_num_nodes_other_than_a_positive_count_is_a_usage_error(
    value: str, tmp_path: Path, no_simulation: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_main(["--preset", "demo", "--out", str(out), "--num-nodes", value]) == 2
    assert "--num-nodes must be an integer >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_num_nodes_reaches_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_train(*args: object, **kwargs: object) -> None:
        seen.update(args[5])  # type: ignore[call-overload]  # the lightning.Trainer options

    monkeypatch.setattr(training, "train", fake_train)
    out = tmp_path / "run"
    assert train_main(["--preset", "demo", "--out", str(out), "--num-nodes", "3"]) == 0
    assert seen["num_nodes"] == 3


def test_schedule_defaults_are_the_originals() -> None:
    # hoidn/PtychoPINN ptycho/model.py train(): ReduceLROnPlateau(val_loss, factor=0.5,
    # patience=2, min_lr=1e-4), EarlyStopping(loss, patience=3), validation_split=0.05
    t, d = TrainConfig(), DataConfig()
    assert (t.lr_factor, t.lr_patience, t.min_lr, t.lr_min_delta) == (0.5, 2, 1e-4, 1e-4)
    assert (t.early_stop_monitor, t.early_stop_patience) == ("train_loss", 3)
    assert d.val_fraction == 0.05


def test_the_plateau_schedule_halves_the_rate_on_the_second_bad_epoch_down_to_min_lr() -> None:
    module = PtychoLightning({"n_filters_scale": 1}, train_config=TrainConfig().to_dict())
    optimizer = module.configure_optimizers()
    assert module.plateau is not None
    rates = []
    for loss in [1.0] * 9:  # the first sets the best; then no improvement
        module.plateau.step(loss)
        rates.append(optimizer.param_groups[0]["lr"])
    # Keras ReduceLROnPlateau(patience=2) drops when its wait count reaches 2
    expected = [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4, 1.25e-4, 1e-4]
    assert rates == pytest.approx(expected)


def test_lr_factor_1_turns_the_schedule_off() -> None:
    module = PtychoLightning({"n_filters_scale": 1}, train_config={"lr_factor": 1.0})
    module.configure_optimizers()
    assert module.plateau is None


def test_schedule_options_are_validated_with_the_option_named(
    tmp_path: Path, no_simulation: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train_main(["--preset", "demo", "--out", str(tmp_path / "r"), "--lr-factor", "2"])
    assert code == 2
    assert "--lr-factor 2.0: TrainConfig.lr_factor must be in (0, 1]" in capsys.readouterr().err
