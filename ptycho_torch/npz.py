"""Read ``.npz`` files from untrusted hands: no pickles, no memory bombs (torch-free).

:func:`read_npz` reads every array; :class:`NpzRowReader` reads rows on demand, so a scan of
thousands of patterns is reconstructed a batch at a time: members stored uncompressed
(``np.savez``) are read at their offset in the file (any rows are one read), members written by
``np.savez_compressed`` are decompressed in order (a read before the last one restarts that
member: bounded memory, more time).

Before any array is allocated, every member's header is checked against the zip directory and
the total against a limit (:mod:`ptycho_torch.npz_headers`; :mod:`zipfile` never inflates past
a member's declared size). Object (pickled) arrays are refused.

Every byte used is checked against the zip's CRC-32: :func:`read_npz` and whole-array reads
through :mod:`zipfile`, which checks it at the end of each member; row reads check the member's
CRC once, streamed in blocks, before their first row is returned (a damaged member is never
reconstructed from, and memory does not grow with the scan).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from ptycho_torch.errors import DataError
from ptycho_torch.npz_headers import DAMAGED, NpzMember, inspect_npz

__all__ = ["NpzRowReader", "read_npz"]


def read_npz(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of ``path`` after :func:`inspect_npz` proved it safe to allocate.

    Raises:
        DataError: as :func:`inspect_npz`, or the data cannot be read (bad CRC, truncated).
    """
    members = inspect_npz(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in members}  # .npy members only: nothing else inflated
    except DAMAGED as exc:
        raise DataError(f"cannot read {what} {path} as an NPZ of plain arrays: {exc}") from None


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header (APPNOTE 4.3.7)
_LOCAL_MAGIC = b"PK\x03\x04"
_CRC_BLOCK = 256 << 10  # bytes read at a time while checking a member's CRC-32 (bounded memory)


class NpzRowReader:
    """Read whole small arrays, or row ranges and row lists of large ones, from an NPZ.

    Use as a context manager. Every read is checked: a truncated or damaged member is a
    :class:`DataError` naming the file and the array.

    Args:
        path: the ``.npz`` file.
        what: what the file is, for messages (``"data file"``).
    """

    def __init__(self, path: str | Path, what: str = "file") -> None:
        self.path, self.what = Path(path), what
        self.members: dict[str, NpzMember] = inspect_npz(self.path, what)
        self._zip = zipfile.ZipFile(self.path)
        self._file = self.path.open("rb")  # stored members: read in place
        self._offsets: dict[str, int | None] = {}  # where a stored member's data start
        self._streams: dict[str, tuple[IO[bytes], int]] = {}  # deflated: open member, next row
        self._checked: set[str] = set()  # members whose CRC-32 matched

    def __enter__(self) -> NpzRowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for stream, _ in self._streams.values():
            stream.close()
        self._streams.clear()
        self._file.close()
        self._zip.close()

    def array(self, key: str) -> np.ndarray:
        """The whole array ``key``, read at once (for the small ones: coordinates, probe)."""
        if key not in self.members:
            self.member(key)  # the error naming the arrays there are
        try:
            with self._zip.open(f"{key}.npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except DAMAGED as exc:
            raise self._damaged(key, exc) from None

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` along axis 0 of ``key``, as a new array."""
        member = self.member(key)
        start, stop = max(0, start), min(stop, member.shape[0])
        if stop <= start:
            return np.empty((0, *member.shape[1:]), member.dtype)
        self._check_crc(key)
        offset = self._offset(key)
        if offset is None:
            return self._stream_rows(key, start, stop)
        rows = np.empty((stop - start, *member.shape[1:]), member.dtype)
        row = rows[0].nbytes
        try:
            self._file.seek(offset + start * row)
            got = self._file.readinto(rows.data.cast("B"))
        except OSError as exc:
            raise self._damaged(key, exc) from None
        if got != rows.nbytes:
            raise self._damaged(key, EOFError(f"rows {start}-{stop - 1} incomplete"))
        return rows

    def take(self, key: str, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) of ``key``: ``(len(indices), ...)``.

        Reads each run of consecutive indices once, in increasing order.
        """
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(flat, return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= self.member(key).shape[0]):
            raise IndexError(f"{key!r}: row index out of range 0..{self.member(key).shape[0] - 1}")
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        parts = [
            self.rows(key, int(r[0]), int(r[-1]) + 1) for r in np.split(unique, breaks) if r.size
        ]
        gathered = np.concatenate(parts) if parts else self.rows(key, 0, 0)
        return gathered[inverse].reshape((*np.shape(indices), *gathered.shape[1:]))

    def member(self, key: str) -> NpzMember:
        """The header of array ``key`` (shape, dtype), checked: present and C-ordered."""
        if key not in self.members:
            raise DataError(
                f"{self.what} {self.path} has no array {key!r}; it holds {sorted(self.members)}"
            )
        member = self.members[key]
        if member.fortran_order and len(member.shape) > 1:
            raise DataError(
                f"{self.what} {self.path}: array {key!r} is Fortran-ordered; save it C-ordered "
                "(np.savez(path, key=np.ascontiguousarray(value)))"
            )
        return member

    # --- internals --------------------------------------------------------------------------------

    def _offset(self, key: str) -> int | None:
        """Where a stored member's array data start in the file; None for a compressed one."""
        if key in self._offsets:
            return self._offsets[key]
        info = self._zip.getinfo(f"{key}.npy")
        offset = None
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:  # 0x1: encrypted
            try:
                self._file.seek(info.header_offset)
                fields = _LOCAL_HEADER.unpack(self._file.read(_LOCAL_HEADER.size))
            except DAMAGED as exc:
                raise self._damaged(key, exc) from None
            if fields[0] != _LOCAL_MAGIC:
                raise self._damaged(key, ValueError("bad local file header"))
            offset = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
            offset += self.members[key].header_bytes
            if offset + self.members[key].nbytes > self.path.stat().st_size:
                raise self._damaged(key, ValueError("member data run past the end of the file"))
        self._offsets[key] = offset
        return offset

    def _check_crc(self, key: str) -> None:
        """Read member ``key`` once through :mod:`zipfile` in blocks (it compares the CRC-32 at
        the member's end); rows are read in place or streamed only after it matched."""
        if key in self._checked:
            return
        info = self._zip.getinfo(f"{key}.npy")
        left = info.file_size
        try:
            with self._zip.open(info) as stream:
                while left > 0:
                    block = stream.read(min(left, _CRC_BLOCK))
                    if not block:
                        raise EOFError("member ends early")
                    left -= len(block)
                if stream.read(1):  # reaching the end makes zipfile compare the CRC
                    raise ValueError("member runs past its declared size")
        except DAMAGED as exc:
            raise self._damaged(key, exc) from None
        self._checked.add(key)

    def _stream_rows(self, key: str, start: int, stop: int) -> np.ndarray:
        member = self.members[key]
        row = int(np.prod(member.shape[1:], dtype=np.int64)) * member.dtype.itemsize
        try:
            stream, next_row = self._streams.get(key, (None, -1))
            if stream is None or next_row > start:  # first read, or backwards: restart
                if stream is not None:
                    stream.close()
                stream, next_row = self._zip.open(f"{key}.npy"), 0
                stream.read(member.header_bytes)
            while next_row < start:  # skip forward in blocks of at most 64 MiB
                step = min(start - next_row, max(1, (64 << 20) // max(row, 1)))
                if len(stream.read(step * row)) != step * row:
                    raise EOFError("member ends early")
                next_row += step
            data = stream.read((stop - start) * row)
            self._streams[key] = (stream, stop)
        except DAMAGED as exc:
            self._streams.pop(key, None)
            raise self._damaged(key, exc) from None
        if len(data) != (stop - start) * row:
            self._streams.pop(key, None)
            raise self._damaged(key, EOFError(f"rows {start}-{stop - 1} incomplete"))
        return (
            np.frombuffer(data, dtype=member.dtype)
            .reshape((stop - start, *member.shape[1:]))
            .copy()
        )

    def _damaged(self, key: str, exc: BaseException) -> DataError:
        return DataError(
            f"cannot read array {key!r} of {self.what} {self.path} (truncated or damaged): {exc}; "
            "write it again with np.savez"
        )
