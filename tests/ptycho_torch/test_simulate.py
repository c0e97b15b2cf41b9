from __future__ import annotations

import numpy as np
import torch

from ptycho_torch.physics import diffraction_amplitude, illuminate
from ptycho_torch.simulate import SimulationConfig, simulate_scan
from ptycho_torch.stitch import stitch_patches


def test_simulation_is_deterministic_by_seed() -> None:
    a = simulate_scan(SimulationConfig(seed=3, n_images=4))
    b = simulate_scan(SimulationConfig(seed=3, n_images=4))
    c = simulate_scan(SimulationConfig(seed=4, n_images=4))
    assert np.array_equal(a.diffraction, b.diffraction)
    assert not np.array_equal(a.diffraction, c.diffraction)


def test_simulation_follows_the_data_contract_dtypes() -> None:
    scan = simulate_scan(SimulationConfig(n_images=9))
    assert scan.diffraction.dtype == np.float32 and scan.diffraction.shape == (9, 64, 64)
    assert scan.probe.dtype == scan.obj.dtype == scan.patches.dtype == np.complex64
    assert scan.xcoords.dtype == scan.ycoords.dtype == np.float64
    wide = simulate_scan(SimulationConfig(n_images=4, dtype="float64"))
    assert wide.diffraction.dtype == np.float64 and wide.probe.dtype == np.complex128


def test_diffraction_matches_the_physics_forward_model() -> None:
    scan = simulate_scan(SimulationConfig(n_images=4, photons=1e9))  # negligible shot noise
    y = torch.from_numpy(scan.patches)[:, None]
    p = torch.from_numpy(scan.probe)
    model = diffraction_amplitude(*illuminate(y.real, y.imag, p.real, p.imag))[:, 0].numpy()
    scale = np.sqrt((scan.diffraction**2).sum() / (model**2).sum())
    assert np.abs(model * scale - scan.diffraction).max() < 0.01 * scan.diffraction.max()


def test_stitching_ground_truth_patches_recovers_the_object() -> None:
    scan = simulate_scan(SimulationConfig(n_images=25))
    stitched = stitch_patches(scan.patches, scan.xcoords, scan.ycoords, scan.obj.shape)
    region = stitched.weight >= 0.99
    assert region.sum() > 1000 and stitched.obj.dtype == np.complex64
    error = np.abs(stitched.obj[region] - scan.obj[region])
    assert np.median(error) < 0.02
