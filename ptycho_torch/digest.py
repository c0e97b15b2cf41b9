"""Content digests of named arrays: the provenance key that ties references to weights and inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

__all__ = ["arrays_sha256"]


def arrays_sha256(arrays: Mapping[str, object]) -> str:
    """sha256 over names, dtypes, shapes and bytes of arrays, in sorted name order.

    Independent of file container details (zip timestamps, pickle framing), so a checkpoint
    re-saved by another tool, or a TensorFlow twin holding the same weights, gets the same digest.
    Torch tensors are accepted (converted on CPU).
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()  # type: ignore[attr-defined]
        a = np.ascontiguousarray(np.asarray(value))
        h.update(name.encode())
        h.update(b"\0" + a.dtype.str.encode() + b"\0" + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()
