from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho_torch.config import DataConfig
from ptycho_torch.data import PtychoDataModule, PtychoDataset
from ptycho_torch.errors import DataError
from ptycho_torch.prepare import (
    group_scan_points,
    intensity_scale,
    network_input,
    normalisation_factor,
)
from ptycho_torch.scan import load_npz


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _write(tmp_path: Path, arrays: dict[str, np.ndarray], **kw: object) -> Path:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays, **kw)  # type: ignore[arg-type]
    return path


def test_loads_contract_file_without_notes(
    scan_npz: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ptycho_torch.data"):
        data = load_npz(scan_npz)
    assert data.diffraction.dtype == np.float32 and data.probe.dtype == np.complex64
    assert data.n == 16 and data.N == 64 and data.obj is not None and data.patches is not None
    assert not [r for r in caplog.records if "cast" in r.getMessage()]


def test_casts_float64_and_complex128_with_one_logged_note(
    scan64_npz: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ptycho_torch.data"):
        data = load_npz(scan64_npz)
    assert data.diffraction.dtype == np.float32
    assert data.probe.dtype == data.obj.dtype == data.patches.dtype == np.complex64  # type: ignore[union-attr]
    notes = [r.getMessage() for r in caplog.records if "cast" in r.getMessage()]
    assert len(notes) == 1
    assert "diffraction float64->float32" in notes[0] and "probeGuess complex128" in notes[0]


@pytest.mark.parametrize("dtype", [np.float16, np.uint16])
def test_casts_float16_and_uint16_diffraction(scan_npz: Path, tmp_path: Path, dtype: type) -> None:
    arrays = _arrays(scan_npz)
    arrays["diffraction"] = arrays["diffraction"].astype(dtype)
    assert load_npz(_write(tmp_path, arrays)).diffraction.dtype == np.float32


def _bad_cases() -> list[tuple[str, object, str]]:
    return [
        ("missing key", lambda a: a.pop("probeGuess"), "probeGuess"),
        ("nan", lambda a: a["diffraction"].__setitem__((3, 0, 0), np.nan), "non-finite"),
        ("inf", lambda a: a["diffraction"].__setitem__((3, 0, 0), np.inf), "non-finite"),
        ("negative", lambda a: a["diffraction"].__setitem__((2, 5, 5), -1.0), "negative"),
        ("2-D diffraction", lambda a: a.__setitem__("diffraction", a["diffraction"][0]), "(n, N, N)"),
        ("probe shape", lambda a: a.__setitem__("probeGuess", a["probeGuess"][:32]), "probeGuess"),
        ("coords length", lambda a: a.__setitem__("xcoords", a["xcoords"][:3]), "xcoords"),
        ("Y shape", lambda a: a.__setitem__("Y", a["Y"][:2]), "'Y'"),
        ("int32 diffraction", lambda a: a.__setitem__("diffraction", a["diffraction"].astype(np.int32)), "int32"),
        ("complex coords", lambda a: a.__setitem__("ycoords", a["ycoords"].astype(complex)), "ycoords"),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "edit", "needle"), _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_rejects_bad_npz_naming_the_problem(
    scan_npz: Path, tmp_path: Path, name: str, edit: object, needle: str
) -> None:
    arrays = _arrays(scan_npz)
    arrays["diffraction"] = arrays["diffraction"].copy()
    edit(arrays)  # type: ignore[operator]
    with pytest.raises(DataError, match=None) as info:
        load_npz(_write(tmp_path, arrays))
    assert needle in str(info.value)


def test_rejects_pickled_object_array(scan_npz: Path, tmp_path: Path) -> None:
    arrays = _arrays(scan_npz)
    arrays["probeGuess"] = np.array([{"not": "an array"}], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # np.savez pickles object arrays
    with pytest.raises(DataError, match="probeGuess.*pickled"):
        load_npz(path)


def test_rejects_missing_and_non_npz_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(DataError, match="is not an .npz file"):
        load_npz(junk)


def test_gridsize_one_groups_are_trivial() -> None:
    groups = group_scan_points(np.arange(5.0), np.zeros(5), gridsize=1)
    assert groups.indices.tolist() == [[0], [1], [2], [3], [4]]
    assert np.all(groups.positions == 0) and groups.positions.dtype == np.float32


def test_gridsize_two_groups_nearest_neighbours_with_centroid_offsets() -> None:
    y, x = np.divmod(np.arange(36), 6)
    xs, ys = x * 10.0, y * 10.0
    groups = group_scan_points(xs, ys, gridsize=2, neighbours=4, seed=0)
    assert groups.indices.shape == (36, 4) and groups.positions.shape == (36, 4, 2)
    assert np.array_equal(groups.indices[:, 0], np.arange(36))  # each sample starts at its point
    for row, offs in zip(groups.indices, groups.positions):
        assert len(set(row.tolist())) == 4
        d = np.hypot(xs[row[1:]] - xs[row[0]], ys[row[1:]] - ys[row[0]])
        assert d.max() <= 20.0 + 1e-9  # among the 4 nearest (grid step 10; corners reach 20)
        centroid = np.array([xs[row].mean(), ys[row].mean()])
        np.testing.assert_allclose(offs, np.stack([xs[row], ys[row]], 1) - centroid, atol=1e-5)
    again = group_scan_points(xs, ys, gridsize=2, neighbours=4, seed=0)
    assert np.array_equal(groups.indices, again.indices)


def test_dataset_returns_float32_tensors(scan64_npz: Path) -> None:
    data = load_npz(scan64_npz)
    groups = group_scan_points(data.xcoords, data.ycoords, gridsize=2)
    x, offsets = PtychoDataset(data, groups)[0]
    assert x.dtype == offsets.dtype == torch.float32
    assert x.shape == (4, 64, 64) and offsets.shape == (4, 2)


def test_datamodule_splits_by_seed(scan_npz: Path) -> None:
    data = load_npz(scan_npz)
    a = PtychoDataModule(data, 1, DataConfig(val_fraction=0.25, seed=0))
    b = PtychoDataModule(data, 1, DataConfig(val_fraction=0.25, seed=0))
    assert len(a.val_samples) == 4 and len(a.train_samples) == 12
    assert not set(a.val_samples) & set(a.train_samples)
    assert np.array_equal(a.val_samples, b.val_samples)


def test_intensity_scale_is_the_originals_closed_form(scan_npz: Path) -> None:
    data = load_npz(scan_npz)
    counts = float(np.mean(np.sum(data.diffraction.astype(np.float64) ** 2, axis=(1, 2))))
    assert intensity_scale(data.diffraction) == pytest.approx(np.sqrt(counts) / (data.N / 2))
    # fixture value of the original: sqrt(1e9) / 32
    assert intensity_scale(data.diffraction, nphotons=1e9) == pytest.approx(988.2117688026186)


def test_normalised_input_has_the_originals_mean_power(scan_npz: Path) -> None:
    data = load_npz(scan_npz)
    factor = normalisation_factor(data.diffraction)
    x = network_input(data.diffraction, factor, 1.0)
    assert x.dtype == np.float32
    power = float(np.mean(np.sum(x.astype(np.float64) ** 2, axis=(1, 2))))
    assert power == pytest.approx((data.N / 2) ** 2, rel=1e-5)
    # with the data's own scale the network input is the measured amplitude itself
    y = network_input(data.diffraction, factor, intensity_scale(data.diffraction))
    assert np.allclose(y, data.diffraction, rtol=1e-5, atol=1e-5 * float(data.diffraction.max()))
