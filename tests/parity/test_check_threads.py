"""``python -m export check --threads``: applied before the check, recorded in the report's
environment; a bad value is exit 2 before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from parity.check import CheckOptions
from tests.conftest import export_cli as _parity

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


def test_threads_are_applied_and_recorded_in_the_report(artifacts: Path) -> None:
    torch.set_num_threads(2)
    proc = _parity("check", "--artifacts", str(artifacts), "--device", "cpu", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert torch.get_num_threads() == 1
    report = json.loads((artifacts / "report" / "report.json").read_text())
    threads = report["environment"]["threads"]
    assert threads["threads"] == 1 and threads["requested"] == "1"
    assert {"physical_cores", "logical_cpus", "timings_ms"} <= set(threads)
    markdown = (artifacts / "report" / "report.md").read_text()
    assert "- **torch CPU threads**: threads=`1`, requested=`1`" in markdown


@pytest.mark.parametrize("value", ["0", "x"])
def test_bad_threads_exit_2_with_one_line_before_any_work(artifacts: Path, value: str) -> None:
    proc = _parity("check", "--artifacts", str(artifacts), "--threads", value)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: --threads must be 'auto', 'default' or an integer >= 1, got {value!r}"
    ], proc.stderr
    assert not (artifacts / "report").exists()  # nothing ran, nothing written


def test_options_reject_a_bad_count_on_construction() -> None:
    with pytest.raises(ValueError, match="'auto', 'default' or an integer >= 1"):
        CheckOptions(artifacts=Path("a"), threads="-1")
    assert CheckOptions(artifacts=Path("a")).threads == "auto"
