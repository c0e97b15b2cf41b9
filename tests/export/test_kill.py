"""Builds killed at random moments never leave ``--out`` without a complete artifact set."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.build import BuildResult
from export.manifest import read_manifest


def _start(checkpoint: str, feed: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "export", "build", "--checkpoint", checkpoint, "--inputs", feed,
         "--out", str(out), "--reference", "none", "--no-parity"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_ten_killed_builds_never_lose_the_artifacts(built: BuildResult, tmp_path: Path) -> None:
    checkpoint = built.manifest.checkpoint.path
    feed = str(built.out / "inputs.npz")
    out = tmp_path / "artifacts"
    start = time.perf_counter()
    first = _start(checkpoint, feed, out)
    _, err = first.communicate(timeout=600)  # reads and closes its stderr pipe
    assert first.returncode == 0, err
    duration = time.perf_counter() - start
    rng = random.Random(20261130)
    outcomes = []
    for i in range(10):
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM
        proc = _start(checkpoint, feed, out)
        time.sleep(rng.uniform(0.1, 1.1) * duration)  # anywhere from start-up to publishing
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        outcomes.append((sig.name, proc.returncode))
        assert "Traceback" not in err, err[-2000:]
        # at every kill: --out resolves to a complete set whose files match its manifest
        manifest = read_manifest(out)
        assert set(manifest.files) <= {p.name for p in out.iterdir()}
    assert any(code in (-9, 143) for _, code in outcomes), outcomes  # some kills hit a build
    last = _start(checkpoint, feed, out)
    _, err = last.communicate(timeout=600)
    assert last.returncode == 0, err
    read_manifest(out)
    leftovers = [p.name for p in (tmp_path / ".artifacts.versions").glob(".*")]
    leftovers += [p.name for p in tmp_path.glob(".artifacts.link-*")]
    assert leftovers == []
    assert len([p for p in (tmp_path / ".artifacts.versions").iterdir()]) <= 3  # keep 2
