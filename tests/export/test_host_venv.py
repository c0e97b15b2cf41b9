"""A host installs this project without torch, lightning or TensorFlow (the README's command)
in a fresh virtual environment, and `export verify`, `export pack` (then `verify` of the archive)
and `export predict` run there."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from export.build import BuildResult

ROOT = Path(__file__).resolve().parents[2]
HOST_PACKAGES = ["numpy", "onnxruntime", "matplotlib"]  # the README's host install


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_fresh_torch_free_venv_runs_verify_and_predict(
    parity_build: BuildResult, tmp_path: Path
) -> None:
    built = parity_build  # with a reference.npz: verify compares outputs
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    done = _run([*pip, *HOST_PACKAGES])
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"package registry unreachable: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    source = tmp_path / "src"  # a clean copy: the install must not depend on build leftovers
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__", ".*cache*"),
    )
    done = _run([*pip, "--no-deps", str(source)])
    assert done.returncode == 0, done.stderr[-2000:]
    listed = _run([py, "-m", "pip", "list", "--format=freeze"]).stdout.lower()
    assert not any(f"{pkg}==" in listed for pkg in ("torch", "lightning", "tensorflow")), listed

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    cwd = tmp_path  # not the source tree: the installed package is what runs
    done = _run([py, "-m", "export", "verify", str(built.out), "--device", "cpu"], cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "verify PASS" in done.stdout
    packed = tmp_path / "artifacts.tar.gz"  # `export pack`, then verify reads the archive itself
    done = _run(
        [py, "-m", "export", "pack", str(built.out), "--out", str(packed)], cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    done = _run([py, "-m", "export", "verify", str(packed)], cwd=cwd, env=env)
    assert done.returncode == 0 and f"verified {packed}:" in done.stdout, done.stderr[-2000:]

    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    scan = tmp_path / "scan.npz"
    write_npz(simulate_scan(SimulationConfig(n_images=37, seed=3)), scan)
    out = tmp_path / "recon"
    done = _run(
        [py, "-m", "export", "predict", "--artifacts", str(built.out), "--data", str(scan),
         "--out", str(out)], cwd=cwd, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with np.load(out / "reconstruction.npz") as recon:
        assert recon["object"].dtype == np.complex64 and np.isfinite(recon["object"]).all()
