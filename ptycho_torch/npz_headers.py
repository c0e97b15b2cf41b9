"""What an ``.npz`` declares, checked before anything is allocated (torch-free).

Every member's ``.npy`` header is read and checked against the zip directory: the bytes the
header's shape and dtype imply must be exactly the bytes the member holds (a forged header
declaring a gigantic shape is refused without allocating), and the total must stay under a limit
(:data:`MAX_BYTES_ENV`; a zip member inflating to gigabytes is refused by its declared size).
Object (pickled) arrays are refused. Reading the arrays: :mod:`ptycho_torch.npz`.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ptycho_torch.errors import DataError

__all__ = ["DAMAGED", "DEFAULT_MAX_BYTES", "MAX_BYTES_ENV", "NpzMember", "inspect_npz"]

MAX_BYTES_ENV = "PTYCHO_MAX_NPZ_BYTES"
DEFAULT_MAX_BYTES = 16 * 2**30  # 16 GiB of arrays per file
# What zipfile/zlib/numpy raise on damaged bytes (found by tests/export/test_fuzz.py): a bad
# deflate stream, an unsupported or encrypted member, a cut header, a bad CRC.
DAMAGED = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
)


class NpzMember:
    """One array of an NPZ as its header declares it.

    ``header_bytes`` is where the array's data start inside the member's ``.npy`` bytes.
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        nbytes: int,
        fortran_order: bool = False,
        header_bytes: int = 0,
    ) -> None:
        self.name, self.shape, self.dtype, self.nbytes = name, shape, dtype, nbytes
        self.fortran_order, self.header_bytes = fortran_order, header_bytes


def _max_bytes() -> int:
    raw = os.environ.get(MAX_BYTES_ENV)
    if raw is None:
        return DEFAULT_MAX_BYTES
    try:
        return int(float(raw))
    except ValueError:
        raise DataError(f"{MAX_BYTES_ENV}={raw!r} is not a number of bytes") from None


def inspect_npz(path: str | Path, what: str = "file") -> dict[str, NpzMember]:
    """Headers of every array in ``path``, checked for consistency and size; nothing allocated.

    Raises:
        DataError: (exit 2) not an NPZ, a pickled array, a header that does not match the
            member's size (forged or truncated), or more than the limit in all
            (``PTYCHO_MAX_NPZ_BYTES``, default 16 GiB).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        archive = zipfile.ZipFile(path)
    except DAMAGED as exc:
        raise DataError(
            f"{what} {path} is not an .npz file (a zip archive written by np.savez): {exc}"
        ) from None
    members: dict[str, NpzMember] = {}
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            members[info.filename[:-4]] = _member(archive, info, path, what)
    total = sum(m.nbytes for m in members.values())
    limit = _max_bytes()
    if total > limit:
        raise DataError(
            f"{what} {path} declares {total / 2**30:.1f} GiB of arrays, more than the "
            f"{limit / 2**30:.1f} GiB limit; set {MAX_BYTES_ENV}=BYTES if the file is genuine"
        )
    return members


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, what: str) -> NpzMember:
    name = info.filename[:-4]
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            header_bytes = f.tell()
    except DAMAGED as exc:
        raise DataError(f"{what} {path}: array {name!r} has an unreadable header: {exc}") from None
    if dtype.hasobject:
        raise DataError(
            f"{what} {path}: key {name!r} holds a pickled object array, which is never "
            "loaded; expected a plain numeric array: save it with np.savez"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if header_bytes + nbytes != info.file_size:
        raise DataError(
            f"{what} {path}: array {name!r} declares shape {tuple(shape)} {dtype} "
            f"({nbytes} bytes) but its member holds {info.file_size - header_bytes} bytes: "
            "the file is truncated or forged; write it again with np.savez"
        )
    return NpzMember(name, tuple(shape), dtype, nbytes, bool(fortran), header_bytes)
