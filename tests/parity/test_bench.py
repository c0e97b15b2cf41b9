"""``python -m parity.bench``: every backend timed on the artifacts' batch, rows printed and saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.build import BuildResult

RUNNERS = ["eager[cpu]", "torchscript[cpu]", "pt2[cpu]", "onnxruntime[cpu]"]


def test_bench_times_every_backend_and_writes_its_json(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from parity.bench_cli import main  # what `python -m parity.bench` runs

    out = tmp_path / "bench.json"
    argv = ["--artifacts", str(built.out), "--repeats", "2", "--warmup", "1", "--json", str(out)]
    code = main(argv)
    stdout = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out.read_text())
    assert [row["runner"] for row in rows] == RUNNERS
    for row in rows:
        assert row["median_ms"] > 0 and row["p90_ms"] > 0, row
        assert row["patterns_per_s"] == pytest.approx(2 / (row["median_ms"] / 1e3))  # batch 2
        assert f"{row['median_ms']:>10.2f}" in stdout.split(row["runner"], 1)[1].splitlines()[0]
    assert rows[0]["speedup_vs_eager"] == 1.0
    assert rows[3]["providers"] == ["CPUExecutionProvider"]
