"""The scan reader reads the files users already have: the original PtychoPINN's ``diff3d``
amplitudes and Ptychodus's ``diff3d`` intensities, under the data contract's names.

Files written by Ptychodus's own writer: ``tests/export/test_ptychodus.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.errors import DataError
from ptycho_torch.prepare import factor_from_counts, network_input, pattern_counts
from ptycho_torch.scan import PtychoData, load_npz
from ptycho_torch.scan_layouts import CONTRACT, ORIGINAL, PTYCHODUS, ScanRows
from ptycho_torch.scan_reader import ScanReader
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

REPO = Path(__file__).resolve().parents[2]
ORIGINAL_CASE = REPO.parent / "shared" / "reference" / "ptychopinn-tf" / "n64-gs1"


@pytest.fixture(scope="module")
def scan() -> PtychoData:
    return simulate_scan(SimulationConfig(seed=6, n_images=9))


def _ptychodus_like(scan: PtychoData, path: Path, modes: int = 1, **extra: np.ndarray) -> Path:
    """The keys ``save_ptychopinn_training_data`` writes, intensities in uint32 counts."""
    counts = np.rint(scan.diffraction.astype(np.float64) ** 2).astype(np.uint32)
    probe = np.stack([scan.probe * (0.5**k) for k in range(modes)])  # (modes, N, N)
    arrays = {
        "xcoords": scan.xcoords,
        "ycoords": scan.ycoords,
        "xcoords_start": scan.xcoords,
        "ycoords_start": scan.ycoords,
        "diff3d": counts,
        "bad_pixels": np.zeros(counts.shape[1:], bool),
        "probeGuess": probe,
        "objectGuess": scan.obj,
        "scan_index": np.zeros(scan.n, dtype=int),
        **extra,
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_a_ptychodus_file_is_read_as_the_square_root_of_its_counts(
    scan: PtychoData, tmp_path: Path
) -> None:
    path = _ptychodus_like(scan, tmp_path / "train.npz", modes=3)
    expected = np.sqrt(np.rint(scan.diffraction.astype(np.float64) ** 2)).astype(np.float32)
    data = load_npz(path)
    assert data.diffraction.dtype == np.float32
    assert np.allclose(data.diffraction, expected, rtol=1e-6, atol=0)
    assert data.probe.shape == (64, 64) and np.array_equal(data.probe, scan.probe)  # mode 0
    assert np.array_equal(data.xcoords, scan.xcoords) and data.obj is not None
    with ScanReader(path) as reader:
        assert (reader.n, reader.N, reader.object_shape) == (9, 64, scan.obj.shape)
        assert np.array_equal(reader.rows(0, 9), data.diffraction)
        assert np.array_equal(reader.take(np.array([[4], [2]])), data.diffraction[[[4], [2]]])
    with ScanRows(path) as rows:
        assert rows.layout is PTYCHODUS and rows.members["diffraction"].dtype == np.float32


def test_a_probe_stack_says_which_mode_is_used(
    scan: PtychoData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _ptychodus_like(scan, tmp_path / "train.npz", modes=3)
    with caplog.at_level(logging.WARNING):
        load_npz(path)
    assert "probeGuess holds 3 probe modes (3, 64, 64); mode 0 is used" in caplog.text


def test_a_negative_count_is_refused_naming_the_pattern(scan: PtychoData, tmp_path: Path) -> None:
    counts = np.rint(scan.diffraction.astype(np.float64) ** 2)
    counts[5, 3, 3] = -2.0
    path = _ptychodus_like(scan, tmp_path / "train.npz", diff3d=counts)
    with pytest.raises(DataError, match="negative values \\(first in pattern 5\\)"):
        load_npz(path)
    with ScanReader(path) as reader, pytest.raises(DataError, match="first in pattern 5"):
        reader.pattern_counts()


def test_an_original_diff3d_file_holds_amplitudes(scan: PtychoData, tmp_path: Path) -> None:
    """``RawData.to_file``'s keys: diff3d is the contract's diffraction under its old name."""
    path = tmp_path / "original.npz"
    np.savez(
        path,
        xcoords=scan.xcoords,
        ycoords=scan.ycoords,
        xcoords_start=scan.xcoords,
        ycoords_start=scan.ycoords,
        diff3d=scan.diffraction,
        probeGuess=scan.probe,
        scan_index=np.zeros(scan.n, dtype=np.int64),
    )
    data = load_npz(path)
    assert np.array_equal(data.diffraction, scan.diffraction)
    with ScanRows(path) as rows:
        assert rows.layout is ORIGINAL
    with ScanRows(write_npz(scan, tmp_path / "contract.npz")) as rows:
        assert rows.layout is CONTRACT


@pytest.mark.skipif(not ORIGINAL_CASE.is_dir(), reason=f"original fixtures not at {ORIGINAL_CASE}")
def test_the_originals_own_arrays_as_a_diff3d_file_give_its_network_input(tmp_path: Path) -> None:
    """The original's n64-gs1 test patterns written as its ``RawData.to_file`` would: our
    normalisation of ``diff3d`` as amplitudes gives the input its model was fed."""
    with np.load(ORIGINAL_CASE / "inputs.npz") as f:
        amplitudes = f["diffraction_normalized"][..., 0]  # (16, N, N): the loader's X
        fed = f["diffraction"][..., 0]  # X * intensity_scale
        scale = float(f["input_scale"])
        coords = f["coords_nn"][:, 0, :, 0].astype(np.float64)  # (16, 2): x, y
    with np.load(ORIGINAL_CASE / "probe.npz") as f:
        probe = f["probe_guess"]
    path = tmp_path / "test_data.npz"
    np.savez(
        path,
        xcoords=coords[:, 0],
        ycoords=coords[:, 1],
        xcoords_start=coords[:, 0],
        ycoords_start=coords[:, 1],
        diff3d=amplitudes,
        probeGuess=probe,
        scan_index=np.zeros(len(coords), dtype=np.int64),
    )
    with ScanReader(path) as reader:
        factor = factor_from_counts(reader.pattern_counts(), reader.N)
        got = network_input(reader.rows(0, reader.n), factor, scale)
    assert np.allclose(got, fed, rtol=2e-6, atol=1e-6)
    # read as intensities instead (sqrt), the input would be far off: the convention matters
    wrong = np.sqrt(amplitudes)
    wrong_factor = factor_from_counts(pattern_counts(wrong), 64)
    assert not np.allclose(network_input(wrong, wrong_factor, scale), fed, rtol=1e-2)


def test_a_file_of_neither_layout_names_what_it_has_and_what_each_needs(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, patterns=np.zeros((2, 8, 8)), indexes=np.arange(2))
    with pytest.raises(DataError) as info:
        load_npz(path)
    message = str(info.value)
    assert "it holds ['indexes', 'patterns']" in message
    assert "['diffraction', 'probeGuess', 'xcoords', 'ycoords']" in message
    assert "['diff3d', 'probeGuess', 'xcoords', 'ycoords']" in message
    assert "--product" in message  # a Ptychodus diffraction file: what to do with it
    with pytest.raises(DataError, match="it holds \\['indexes', 'patterns'\\]"):
        ScanReader(path)


def test_a_diff3d_file_without_coordinates_names_the_training_layout(
    scan: PtychoData, tmp_path: Path
) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, diff3d=scan.diffraction, probeGuess=scan.probe)
    with pytest.raises(DataError, match="training file \\(diff3d\\) needs .*missing \\['xcoords'"):
        ScanReader(path)
