"""Fuzzing the readers of untrusted input: whatever the bytes or values, the only exceptions are
the project's typed errors (exit 2), never a crash that reads as a bug or a parity failure."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from export.errors import ManifestError, SignatureError
from export.manifest import Manifest
from export.signature import make_signature
from ptycho_torch.config import ModelConfig
from ptycho_torch.errors import DataError
from ptycho_torch.npz import read_npz

# A fixed budget, the same examples on every run (CI is reproducible); a failure is shrunk.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _write(data: bytes) -> Path:
    with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


@FUZZ
@given(st.binary(max_size=2048))
def test_npz_reader_on_random_bytes(data: bytes) -> None:
    path = _write(data)
    try:
        read_npz(path)
    except DataError:
        pass
    finally:
        path.unlink()


@st.composite
def corrupted_npz(draw: st.DrawFn) -> bytes:
    """A real NPZ with a few bytes flipped or cut (headers, sizes, CRCs, data)."""
    array = draw(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=5)))
    buf = io.BytesIO()
    compress = draw(st.booleans())
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        member = io.BytesIO()
        np.lib.format.write_array(member, array)
        z.writestr("diffraction.npy", member.getvalue())
    raw = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@FUZZ
@given(corrupted_npz())
def test_npz_reader_on_corrupted_archives(data: bytes) -> None:
    path = _write(data)
    try:
        arrays = read_npz(path)
        assert all(isinstance(a, np.ndarray) for a in arrays.values())
    except DataError:
        pass
    finally:
        path.unlink()


_SIGNATURE = make_signature(ModelConfig(gridsize=1), batch=2, head="physics")


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["diffraction", "positions", "extra", "Diffraction"]),
        hnp.arrays(
            st.sampled_from([np.float32, np.float64, np.int32, np.complex64, np.float16]),
            hnp.array_shapes(max_dims=4, max_side=3),
        ),
        max_size=3,
    )
)
def test_feed_check_on_arbitrary_feeds(feed: dict[str, np.ndarray]) -> None:
    try:
        _SIGNATURE.check_feed(feed)
    except SignatureError as exc:
        assert str(exc)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["files", "signature", "head", "inputs_sha256", "checkpoint", "opset", "other"]
        ),
        json_values,
        max_size=7,
    )
)
def test_manifest_reader_on_arbitrary_json(raw: dict[str, object]) -> None:
    try:
        manifest = Manifest.from_dict(json.loads(json.dumps(raw)))
    except ManifestError:
        return
    assert isinstance(manifest.files, dict)
