"""Content digests of named arrays: the provenance key that ties references to weights and inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

__all__ = ["ArraysDigest", "arrays_sha256"]


class ArraysDigest:
    """:func:`arrays_sha256` fed piece by piece, for arrays read in chunks (bounded memory).

    Per array, in sorted name order: :meth:`begin` with its name, dtype and full shape, then
    :meth:`update` with its rows in order. :meth:`hexdigest` then equals ``arrays_sha256`` of the
    whole arrays: the one definition of the digest's layout.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._last: str | None = None

    def begin(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Start array ``name``; names must come in sorted order, as ``arrays_sha256`` takes them."""
        if self._last is not None and name <= self._last:
            raise ValueError(
                f"arrays must be digested in sorted name order: {name!r} after {self._last!r}"
            )
        self._last = name
        shape = tuple(int(s) for s in shape)  # repr of plain ints, whatever integer type came in
        self._sha.update(name.encode())
        self._sha.update(
            b"\0" + np.dtype(dtype).str.encode() + b"\0" + repr(shape).encode() + b"\0"
        )

    def update(self, rows: np.ndarray) -> None:
        """The next rows of the current array (its bytes in C order)."""
        self._sha.update(np.ascontiguousarray(rows).tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def arrays_sha256(arrays: Mapping[str, object]) -> str:
    """sha256 over names, dtypes, shapes and bytes of arrays, in sorted name order.

    Independent of file container details (zip timestamps, pickle framing), so a checkpoint
    re-saved by another tool, or a TensorFlow twin holding the same weights, gets the same digest.
    Torch tensors are accepted (converted on CPU).
    """
    digest = ArraysDigest()
    for name in sorted(arrays):
        value = arrays[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(value))  # 0-d becomes (1,): part of the layout
        digest.begin(name, a.dtype, a.shape)
        digest.update(a)
    return digest.hexdigest()
