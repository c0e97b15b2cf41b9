"""Read row ranges of arrays inside an NPZ without loading whole arrays (bounded memory).

The parity check's view of :class:`ptycho_torch.npz.NpzRowReader`, the project's one row reader
(headers checked against member sizes, no pickles, stored members read in place, deflated ones
streamed forward): the same reads, with its errors raised as :class:`ReferenceFormatError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from parity.errors import ReferenceFormatError
from ptycho_torch.errors import DataError
from ptycho_torch.npz import NpzRowReader

__all__ = ["NpzRows"]


class NpzRows:
    """Row access to the arrays of an ``.npz``: ``rows(key, start, stop)`` reads only those rows.

    Works for NPZ files written by ``np.savez`` (stored) and ``np.savez_compressed`` (deflated).
    Reading the rows in order (chunk after chunk, as the check does) reads every byte once and
    holds one chunk in memory. A jump backwards in a deflated member decompresses it again
    from its start, still in bounded memory. Object (pickled) arrays are refused.

    Raises:
        ReferenceFormatError: (exit 2) not an NPZ, a pickled, Fortran-ordered, truncated or
            damaged array, or no array of that name.
    """

    def __init__(self, path: str | Path, what: str = "file") -> None:
        self.path = Path(path)
        with _as_reference_error():
            self._reader = NpzRowReader(self.path, what)

    @property
    def keys(self) -> list[str]:
        return sorted(self._reader.members)

    def shape(self, key: str) -> tuple[int, ...]:
        with _as_reference_error():
            return self._reader.member(key).shape

    def dtype(self, key: str) -> np.dtype:
        with _as_reference_error():
            return self._reader.member(key).dtype

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` along axis 0 of array ``key`` (none past the end)."""
        with _as_reference_error():
            return self._reader.rows(key, start, stop)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> NpzRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _as_reference_error() -> Iterator[None]:
    try:
        yield
    except DataError as exc:
        raise ReferenceFormatError(str(exc)) from None
