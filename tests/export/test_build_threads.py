"""``python -m export build --threads``: applied once before the build, recorded in the manifest
and in the parity report; a bad value is exit 2 before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from export.manifest import Manifest, read_manifest
from tests.conftest import export_cli as _export

if TYPE_CHECKING:
    from export.build import BuildResult


pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


def test_threads_are_recorded_in_the_manifest_and_the_report(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "arts"
    proc = _export(
        "build", "--checkpoint", str(model_file), "--inputs", str(feed_file), "--out", str(out),
        "--reference", "none", "--device", "cpu", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recorded = read_manifest(out).threads
    assert recorded is not None
    assert recorded["threads"] == 1 and recorded["requested"] == "1"
    assert recorded["timings_ms"] == {}  # given, not measured
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["environment"]["threads"] == recorded  # the check reused the build's choice
    assert "torch CPU threads" in (out / "report" / "report.md").read_text()


@pytest.mark.parametrize("value", ["0", "x"])
def test_bad_threads_exit_2_with_one_line_before_any_work(
    model_file: Path, feed_file: Path, tmp_path: Path, value: str
) -> None:
    out = tmp_path / "arts"
    proc = _export(
        "build", "--checkpoint", str(model_file), "--inputs", str(feed_file), "--out", str(out),
        "--threads", value,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: --threads must be 'auto', 'default' or an integer >= 1, got {value!r}"
    ], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_manifests_from_before_threads_still_read(built: BuildResult) -> None:
    raw = json.loads((built.out / "manifest.json").read_text())
    raw.pop("threads", None)
    assert Manifest.from_dict(raw).threads is None
    raw["threads"] = {"threads": 2, "requested": "auto"}
    manifest = Manifest.from_dict(raw)
    assert manifest.threads == {"threads": 2, "requested": "auto"} and not manifest.extra
    assert Manifest.from_dict(manifest.to_dict()) == manifest
