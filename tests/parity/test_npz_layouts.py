"""Streamed NPZ reading: deflated members and version-2 ``.npy`` headers read like plain ones."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from parity.check import CheckOptions, run_check
from parity.reference import load_reference
from ptycho_torch.npz import NpzRowReader

LAYOUTS = {
    "savez_compressed": (zipfile.ZIP_DEFLATED, (1, 0)),
    "stored-v2-header": (zipfile.ZIP_STORED, (2, 0)),
    "deflated-v2-header": (zipfile.ZIP_DEFLATED, (2, 0)),
}


def write_npz(path: Path, arrays: dict[str, np.ndarray], layout: str) -> Path:
    """Write ``arrays`` as an NPZ the way ``layout`` names (``np.savez_compressed`` itself, or a
    zip of ``.npy`` members written with ``np.lib.format.write_array(version=...)``)."""
    compression, version = LAYOUTS[layout]
    if layout == "savez_compressed":
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        return path
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, array in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, version=version)
    with zipfile.ZipFile(path) as z:  # the layout is what the test says it is
        assert {i.compress_type for i in z.infolist()} == {compression}
        with z.open(z.namelist()[0]) as member:
            assert np.lib.format.read_magic(member) == version
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_rows_of_every_layout_equal_the_arrays(layout: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "diffraction": rng.random((7, 2, 8, 8), dtype=np.float32),
        "positions": rng.normal(size=(7, 2, 2)).astype(np.float32),
    }
    path = write_npz(tmp_path / "a.npz", arrays, layout)
    with NpzRowReader(path) as rows:
        assert sorted(rows.members) == ["diffraction", "positions"]
        assert rows.member("diffraction").shape == (7, 2, 8, 8)
        assert rows.member("positions").dtype == np.float32
        for key, array in arrays.items():
            for start, stop in [(0, 3), (3, 6), (6, 9), (1, 2)]:  # in order, past the end, back
                np.testing.assert_array_equal(rows.rows(key, start, stop), array[start:stop])


def test_check_streams_a_compressed_version_2_feed_and_reference(
    artifacts: Path, tmp_path: Path
) -> None:
    """The whole check on a feed and a reference rewritten as deflated members, v2 headers."""
    with np.load(artifacts / "inputs.npz", allow_pickle=False) as data:
        feed = {k: data[k] for k in data.files}
    with np.load(artifacts / "reference.npz", allow_pickle=False) as data:
        outputs = {k: data[k] for k in data.files}
    inputs = write_npz(tmp_path / "feed.npz", feed, "deflated-v2-header")
    write_npz(artifacts / "reference.npz", outputs, "deflated-v2-header")  # not hashed
    assert load_reference(artifacts / "reference.npz").shapes == {
        k: v.shape for k, v in outputs.items()
    }
    report = run_check(CheckOptions(artifacts=artifacts, inputs=inputs, device="cpu"))
    assert report.verdict == "pass", [c.log_line() for c in report.comparisons if not c.passed]
    assert any(c.right == "tf-reference" for c in report.comparisons)  # the reference was read
