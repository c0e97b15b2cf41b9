"""Small simulated scans shared by the ptycho_torch tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz


@pytest.fixture(scope="session")
def scan_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 float32 patterns, N=64."""
    path = tmp_path_factory.mktemp("scan") / "scan.npz"
    return write_npz(simulate_scan(SimulationConfig(seed=1, n_images=16)), path)


@pytest.fixture(scope="session")
def scan64_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 float64/complex128 patterns, N=64: the regression input of the dtype bug."""
    path = tmp_path_factory.mktemp("scan64") / "scan64.npz"
    return write_npz(simulate_scan(SimulationConfig(seed=2, n_images=16, dtype="float64")), path)
