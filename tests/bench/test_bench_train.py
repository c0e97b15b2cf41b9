"""``python -m export bench-train``: the steps it times train the same network the same way.

Figures are never asserted (the machines are shared); what is pinned is that every float32 step
starts from the same weights on the same batch, so their first losses agree, that the report
has its rows, breakdown and JSON, and that a bad option is exit 2 before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import export_cli

_FAST = ["--N", "64", "--n-filters-scale", "1", "--batch", "2", "--seconds", "0", "--rounds", "2"]


def _first_losses(report: dict) -> dict[str, float]:
    return {t["name"]: t["first_loss"] for t in report["timings"]}


@pytest.mark.usefixtures("restore_threads")
def test_ours_and_plain_steps_start_from_the_same_loss_and_report_a_breakdown(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench-train.json"
    done = export_cli(
        "bench-train", *_FAST, "--no-keras", "--profile-steps", "1", "--threads", "1",
        "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["schema"] == "ptychopinn-bench-train/1"
    losses = _first_losses(report)
    assert set(losses) == {"ours", "ours, plain"}
    assert losses["ours"] == pytest.approx(losses["ours, plain"], rel=1e-5)
    assert all(t["rounds"] >= 2 and t["p50_ms"] > 0 for t in report["timings"])
    assert "| ours |" in done.stdout and "| ours, plain |" in done.stdout
    assert "network backward: convolutions" in done.stdout
    parts = {p["part"]: p["ms_per_step"] for p in report["profile"]["rows"]}
    # the fused and narrow convolution paths count as convolutions, not as other operators
    assert parts["network forward: convolutions"] > parts["network forward: other ops"]
    assert "No Keras step: not asked" in done.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--variants", "nope"], "TrainBenchOptions.variants must name some of"),
        (["--batch", "0"], "batch and rounds must be >= 1"),
        (["--N", "48"], "ModelConfig.N must be one of"),
        (["--json", "/nonexistent-folder/b.json"], "its folder /nonexistent-folder does not exist"),
        (["--json", "/"], "/: is a folder; give the path of a file to write"),
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], expected: str) -> None:
    done = export_cli("bench-train", *argv)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.usefixtures("restore_threads")
def test_the_keras_step_computes_the_same_loss_as_ours(tmp_path: Path) -> None:
    """The Keras stand-in trains the same network: same weights, same batch, same first loss."""
    out = tmp_path / "bench-train.json"
    done = export_cli(
        "bench-train", *_FAST, "--variants", "default", "--profile-steps", "0",
        "--threads", "1", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    losses = _first_losses(json.loads(out.read_text()))
    assert set(losses) == {"ours", "keras"}
    assert losses["keras"] == pytest.approx(losses["ours"], rel=1e-5)
    assert "vs keras" in done.stdout
