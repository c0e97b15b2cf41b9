"""The torch-free scan contract: reading a scan batch by batch gives what load_npz gives."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.errors import DataError
from ptycho_torch.npz import NpzRowReader
from ptycho_torch.prepare import factor_from_counts, group_scan_points, normalisation_factor
from ptycho_torch.scan import load_npz
from ptycho_torch.scan_reader import ScanReader
from ptycho_torch.stitch import StitchAccumulator, object_shape, stitch_patches


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("compressed", [False, True])
def test_row_reader_reads_ranges_and_lists_like_the_whole_array(
    tmp_path: Path, compressed: bool
) -> None:
    rng = np.random.default_rng(0)
    a = rng.random((50, 3, 4)).astype(np.float32)
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, a=a, s=np.float64(2.5))
    with NpzRowReader(path) as rows:
        assert np.array_equal(rows.rows("a", 10, 20), a[10:20])
        assert np.array_equal(rows.rows("a", 0, 5), a[0:5])  # backwards: restarts the member
        assert np.array_equal(rows.rows("a", 45, 99), a[45:])
        idx = np.array([[7, 3], [3, 49], [8, 9]])
        assert np.array_equal(rows.take("a", idx), a[idx])
        assert rows.array("s") == 2.5
        with pytest.raises(DataError, match="no array 'b'"):
            rows.rows("b", 0, 1)


def test_row_reader_refuses_a_truncated_member(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez_compressed(path, a=np.arange(1000.0))
    data = path.read_bytes()
    cut = data.index(b"a.npy") + 200  # inside the deflated member
    path.write_bytes(data[:cut] + bytes(len(data) - cut))
    with pytest.raises(DataError), NpzRowReader(path) as rows:
        rows.rows("a", 0, 1000)


def test_scan_reader_gives_load_npz_values(scan64_npz: Path) -> None:
    data = load_npz(scan64_npz)  # float64 on disk: both cast to float32
    with ScanReader(scan64_npz) as scan:
        assert (scan.n, scan.N) == (data.n, data.N)
        assert np.array_equal(scan.xcoords, data.xcoords)
        assert scan.object_shape == data.obj.shape  # type: ignore[union-attr]
        rows = scan.rows(3, 11)
        assert rows.dtype == np.float32 and np.array_equal(rows, data.diffraction[3:11])
        groups = group_scan_points(data.xcoords, data.ycoords, 2, seed=0)
        assert np.array_equal(scan.take(groups.indices[:5]), data.diffraction[groups.indices[:5]])
        counts = scan.pattern_counts(chunk=5)
    assert factor_from_counts(counts, data.N, groups.indices) == normalisation_factor(
        data.diffraction, groups.indices
    )


def test_scan_reader_notes_the_cast_once(
    scan64_npz: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), ScanReader(scan64_npz) as scan:
        scan.rows(0, 4)
        scan.rows(4, 8)
    notes = [r.getMessage() for r in caplog.records if "cast" in r.getMessage()]
    assert len(notes) == 1 and "diffraction float64->float32" in notes[0]


@pytest.mark.parametrize(
    ("value", "words"), [(np.nan, "non-finite values (first in pattern 9)"), (-1.0, "negative")]
)
def test_scan_reader_names_the_bad_pattern(
    scan_npz: Path, tmp_path: Path, value: float, words: str
) -> None:
    arrays = _arrays(scan_npz)
    arrays["diffraction"][9, 5, 5] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with ScanReader(path) as scan:
        with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
            scan.pattern_counts(chunk=4)
        with pytest.raises(DataError, match="first in pattern 9"):
            scan.take(np.array([[2], [9]]))


def test_scan_reader_checks_the_layout_from_headers(scan_npz: Path, tmp_path: Path) -> None:
    arrays = _arrays(scan_npz)
    arrays["probeGuess"] = arrays["probeGuess"][:32, :32]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    for read in (load_npz, ScanReader):
        with pytest.raises(DataError, match=r"'probeGuess' must have shape \(64, 64\)"):
            read(path)


def test_stitching_batch_by_batch_is_bit_identical() -> None:
    rng = np.random.default_rng(0)
    n, size = 37, 16
    patches = (rng.random((n, size, size)) * np.exp(1j * rng.random((n, size, size)))).astype(
        np.complex64
    )
    x, y = rng.uniform(5, 90, n), rng.uniform(-3, 90, n)  # some hang off the top edge
    whole = stitch_patches(patches, x, y)
    stitcher = StitchAccumulator(object_shape(x, y, size), size)
    stitcher.add_weights(x, y)
    for start in range(0, n, 5):
        stitcher.add_patches(patches[start : start + 5], x[start : start + 5], y[start : start + 5])
    streamed = stitcher.result()
    assert np.array_equal(whole.obj, streamed.obj) and np.array_equal(whole.weight, streamed.weight)
