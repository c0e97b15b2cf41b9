"""Read row ranges of arrays inside an NPZ without loading whole arrays (bounded memory)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from parity.errors import ReferenceFormatError

__all__ = ["NpzRows"]


class NpzRows:
    """Row access to the arrays of an ``.npz``: ``rows(key, start, stop)`` reads only those rows.

    Works for NPZ files written by ``np.savez`` (stored) and ``np.savez_compressed`` (deflated).
    Each array's member stays open between calls, so reading the rows in order (chunk after
    chunk, as the check does) continues where the last read stopped: every byte is read once,
    and memory holds one chunk. A jump backwards restarts the member (deflated: decompresses
    again from its start, still in bounded memory). Object (pickled) arrays are refused.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ReferenceFormatError(f"cannot open {self.path} as an NPZ: {exc}") from None
        self._headers: dict[str, tuple[tuple[int, ...], np.dtype, bool, int]] = {}
        self._members: dict[str, IO[bytes]] = {}  # open per array, positioned after the last read
        try:
            for info in self._zip.infolist():
                if info.filename.endswith(".npy"):
                    self._headers[info.filename[:-4]] = self._read_header(info)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            self._zip.close()
            raise ReferenceFormatError(f"cannot read {self.path} as an NPZ: {exc}") from None
        except BaseException:
            self._zip.close()
            raise

    def _read_header(self, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, bool, int]:
        with self._zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ReferenceFormatError(
                    f"{self.path}: array {info.filename[:-4]!r} holds Python objects; "
                    "refusing to unpickle it"
                )
            return tuple(shape), dtype, fortran, f.tell()

    @property
    def keys(self) -> list[str]:
        return sorted(self._headers)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._header(key)[0]

    def dtype(self, key: str) -> np.dtype:
        return self._header(key)[1]

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` along axis 0 of array ``key``."""
        shape, dtype, fortran, offset = self._header(key)
        if fortran:
            raise ReferenceFormatError(
                f"{self.path}: array {key!r} is Fortran-ordered; save it C-ordered"
            )
        stop = min(stop, shape[0])
        start = min(start, stop)  # past the end: no rows (a negative read would read them all)
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        try:
            member = self._members.get(key)
            if member is None:
                member = self._members[key] = self._zip.open(f"{key}.npy")
            if member.tell() != offset + start * row:
                member.seek(offset + start * row)
            data = member.read((stop - start) * row)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ReferenceFormatError(f"cannot read {key!r} from {self.path}: {exc}") from None
        if len(data) != (stop - start) * row:
            raise ReferenceFormatError(
                f"{self.path}: array {key!r} is truncated (rows {start}-{stop - 1} incomplete)"
            )
        return np.frombuffer(data, dtype=dtype).reshape((stop - start, *shape[1:])).copy()

    def close(self) -> None:
        for member in self._members.values():
            member.close()
        self._members.clear()
        self._zip.close()

    def __enter__(self) -> NpzRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _header(self, key: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
        if key not in self._headers:
            raise ReferenceFormatError(f"{self.path} has no array {key!r}; it holds {self.keys}")
        return self._headers[key]
