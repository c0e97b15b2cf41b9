"""NPZ files from untrusted hands: forged headers, zip bombs and pickles are refused before
anything large is allocated; compressed and version-2 headers read normally."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.errors import DataError
from ptycho_torch.npz import read_npz
from ptycho_torch.npz_headers import MAX_BYTES_ENV, inspect_npz


def _npy_bytes(array: np.ndarray, version: tuple[int, int] = (1, 0)) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


def _forged(path: Path, rows: int) -> None:
    """A member whose header declares ``rows`` patterns but holds two."""
    real = np.zeros((2, 64, 64), np.float32)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 64, 64)}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("diffraction.npy", header.getvalue() + real.tobytes())


def test_forged_header_declaring_a_million_rows_is_refused_without_allocating(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.npz"
    _forged(path, 10**6)  # 16 GB if believed
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError, match=r"declares shape \(1000000, 64, 64\).*truncated or forged"
        ):
            read_npz(path, "inputs")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_zip_bomb_is_refused_by_its_declared_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, diffraction=np.zeros((64, 256, 256), np.float32))  # 16 MiB of zeros
    assert path.stat().st_size < 100_000
    monkeypatch.setenv(MAX_BYTES_ENV, str(2**20))
    with pytest.raises(DataError, match=rf"more than the 0.0 GiB limit; set {MAX_BYTES_ENV}"):
        read_npz(path, "inputs")


def test_pickled_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, diffraction=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="'diffraction' holds a pickled object array"):
        inspect_npz(path, "inputs")


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, diffraction=np.ones((4, 64, 64), np.float32))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="is not an .npz file"):
        read_npz(path, "inputs")


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"\x93NUMPY not a zip")
    with pytest.raises(DataError, match=r"inputs .* is not an \.npz file"):
        read_npz(path, "inputs")


def test_compressed_and_version_2_headers_read_normally(tmp_path: Path) -> None:
    a = np.arange(2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64)
    b = np.ones((2, 1, 2), np.float32)
    compressed = tmp_path / "c.npz"
    np.savez_compressed(compressed, diffraction=a, positions=b)
    v2 = tmp_path / "v2.npz"
    with zipfile.ZipFile(v2, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("diffraction.npy", _npy_bytes(a, (2, 0)))
        z.writestr("positions.npy", _npy_bytes(b, (2, 0)))
        z.writestr("README.txt", b"not an array: ignored")
    for path in (compressed, v2):
        arrays = read_npz(path)
        assert sorted(arrays) == ["diffraction", "positions"]
        np.testing.assert_array_equal(arrays["diffraction"], a)
        np.testing.assert_array_equal(arrays["positions"], b)


def test_every_single_byte_flip_of_a_compressed_npz_is_a_data_error_or_reads(
    tmp_path: Path,
) -> None:
    """Exhaustive over positions (the fuzzer found a bad deflate stream raising zlib.error)."""
    good = tmp_path / "good.npz"
    np.savez_compressed(good, diffraction=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    raw = good.read_bytes()
    bad = tmp_path / "bad.npz"
    outcomes = {"read": 0, "refused": 0}
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            read_npz(bad)
            outcomes["read"] += 1
        except DataError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == len(raw)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "payload.npz"
    np.savez(path, diffraction=np.array([_Payload(marker)], dtype=object))
    assert not marker.exists()  # saving pickles the payload; it runs only when unpickled
    with pytest.raises(DataError, match="pickled object array"):
        read_npz(path, "inputs")
    assert not marker.exists()
