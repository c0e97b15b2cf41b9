"""The command lines of train, infer and simulate: user errors are exit 2 with one line.

In-process through ``python -m export``'s ``main(argv)``; ``simulate`` (quick to start) and the
slow train-then-infer run go through a real ``python -m export``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import export_cli as _run


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m export ARGS`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _assert_user_error(
    proc: SimpleNamespace | subprocess.CompletedProcess[str], needle: str
) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


def _bad_npz(tmp_path: Path, scan_npz: Path, kind: str) -> Path:
    with np.load(scan_npz) as f:
        arrays = {k: f[k] for k in f.files}
    if kind == "pickled":
        arrays["diffraction"] = np.array([object()], dtype=object)
    elif kind == "missing":
        del arrays["xcoords"]
    elif kind == "shape":
        arrays["probeGuess"] = arrays["probeGuess"][:10]
    elif kind == "nan":
        arrays["diffraction"] = arrays["diffraction"].copy()
        arrays["diffraction"][0, 0, 0] = np.nan
    path = tmp_path / f"{kind}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("pickled", "pickled"),
        ("missing", "xcoords"),
        ("shape", "probeGuess"),
        ("nan", "non-finite"),
    ],
)
def test_train_rejects_bad_npz_with_exit_2(
    scan_npz: Path, tmp_path: Path, kind: str, needle: str
) -> None:
    bad = _bad_npz(tmp_path, scan_npz, kind)
    _assert_user_error(_run("train", "--data", str(bad), "--out", str(tmp_path / "o")), needle)


def test_simulate_rejects_bad_option_with_exit_2(tmp_path: Path) -> None:
    proc = _subprocess("simulate", "--out", str(tmp_path / "x.npz"), "--n-images", "0")
    _assert_user_error(proc, "n_images")
    assert not (tmp_path / "x.npz").exists()


def test_train_rejects_invalid_config_with_exit_2(scan_npz: Path, tmp_path: Path) -> None:
    proc = _run("train", "--data", str(scan_npz), "--out", str(tmp_path), "--lr", "-1")
    _assert_user_error(proc, "learning_rate")


@pytest.mark.slow
def test_cli_train_then_infer_on_float64_npz(scan64_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _subprocess(
        "train", "--data", str(scan64_npz), "--out", str(out), "--epochs", "1",
        "--batch-size", "4", "--n-filters-scale", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "last.ckpt").is_file() and (out / "model.pt").is_file()
    proc = _subprocess(
        "infer", "--checkpoint", str(out / "last.ckpt"), "--data", str(scan64_npz),
        "--out", str(tmp_path / "inf"), "--baseline",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trained:" in proc.stdout and "untrained:" in proc.stdout
    with np.load(tmp_path / "inf" / "reconstruction.npz") as f:
        assert f["object"].dtype == np.complex64 and f["amplitude"].dtype == np.float32
    assert (tmp_path / "inf" / "amplitude.png").is_file()
    assert (tmp_path / "inf" / "metrics.json").is_file()
