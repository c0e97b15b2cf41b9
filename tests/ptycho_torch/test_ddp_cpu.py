"""Lightning DDP over two CPU processes (gloo): what ``--strategy ddp`` does on more hardware.

One tiny two-process run per module; its tests check the ranks, the files, and that the model
exports with ``python -m export build`` and passes parity like any other checkpoint.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ptycho_torch.checkpoint import load_model, model_state_sha256

pytestmark = pytest.mark.slow

_ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def ddp_run(scan_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``train --accelerator cpu --devices 2 --strategy ddp`` on a tiny config: out and stderr."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    argv = [
        sys.executable, "-m", "export", "train", "--data", str(scan_npz), "--out", str(out),
        "--epochs", "2", "--batch-size", "2", "--n-filters-scale", "1",
        "--val-fraction", "0.25", "--threads", "1",
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = dict(re.findall(r"rank (\d) of 2: weights ([0-9a-f]{64})", proc.stderr))
    return SimpleNamespace(out=out, stderr=proc.stderr, ranks=ranks)


def test_two_process_cpu_ddp_trains_with_equal_ranks_and_rank_0_writes(
    ddp_run: SimpleNamespace,
) -> None:
    out, ranks = ddp_run.out, ddp_run.ranks
    assert sorted(ranks) == ["0", "1"] and ranks["0"] == ranks["1"], ddp_run.stderr[-3000:]
    for saved in ("model.pt", "last.ckpt"):
        assert model_state_sha256(load_model(out / saved)) == ranks["0"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.ckpt", "hparams.yaml", "last.ckpt", "loss_curve.png", "metrics.csv", "model.pt",
    ]  # fmt: skip
    with (out / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f) if r["train_loss"]] == ["0", "1"]
    assert ddp_run.stderr.count("INFO ptycho_torch.train: trained 2 epochs") == 1


def test_the_ddp_model_exports_and_passes_parity(
    ddp_run: SimpleNamespace, scan_npz: Path, tmp_path: Path
) -> None:
    """The whole chain after a DDP run: ``export build`` (scan NPZ in, batch 4), then the parity
    check it runs, against the TensorFlow twin's reference when TensorFlow is installed."""
    argv = [
        sys.executable, "-m", "export", "build", "--checkpoint", str(ddp_run.out / "model.pt"),
        "--inputs", str(scan_npz), "--batch", "4", "--out", "arts", "--device", "cpu",
        "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=900, env=_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parity PASS" in proc.stdout, proc.stdout
    manifest = json.loads((tmp_path / "arts" / "manifest.json").read_text())
    assert manifest["checkpoint"]["weights_sha256"] == ddp_run.ranks["0"]
    assert manifest["threads"]["threads"] == 1
    report = json.loads((tmp_path / "arts" / "report" / "report.json").read_text())
    assert report["verdict"] == "pass" and report["exit_code"] == 0
    if importlib.util.find_spec("tensorflow") is not None:
        assert report["reference_provenance"]["generator"] == "tensorflow-twin"
        assert "tf-reference" in {c["right"] for c in report["comparisons"]}
