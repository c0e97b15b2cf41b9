"""Lightning DDP over two CPU processes (gloo): what ``--strategy ddp`` does on more hardware."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptycho_torch.checkpoint import load_model, model_state_sha256


@pytest.mark.slow
def test_two_process_cpu_ddp_trains_with_equal_ranks_and_rank_0_writes(
    scan_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ptycho_torch.train",
            "--data",
            str(scan_npz),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--n-filters-scale",
            "1",
            "--val-fraction",
            "0.25",
            "--threads",
            "1",
            "--accelerator",
            "cpu",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--no-progress",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = dict(re.findall(r"rank (\d) of 2: weights ([0-9a-f]{64})", proc.stderr))
    assert sorted(ranks) == ["0", "1"] and ranks["0"] == ranks["1"], proc.stderr[-3000:]
    for saved in ("model.pt", "last.ckpt"):
        assert model_state_sha256(load_model(out / saved)) == ranks["0"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.ckpt", "hparams.yaml", "last.ckpt", "loss_curve.png", "metrics.csv", "model.pt",
    ]  # fmt: skip
    with (out / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f) if r["train_loss"]] == ["0", "1"]
    assert proc.stderr.count("INFO ptycho_torch.train: trained 2 epochs") == 1
