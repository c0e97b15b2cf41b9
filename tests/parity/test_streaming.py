"""Streaming: inputs and reference are read one chunk at a time, whatever the set's length."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from export.build import BuildResult
from export.errors import ReferenceFormatError
from parity.check import CheckOptions, run_check
from parity.provenance import inputs_sha256
from parity.reference import load_reference, save_reference
from parity.runners import ReferenceRunner
from ptycho_torch.checkpoint import load_model, model_state_sha256
from ptycho_torch.digest import arrays_sha256
from ptycho_torch.npz import NpzRowReader


def _eager_reference(build: BuildResult, feed: dict[str, np.ndarray], path: Path) -> Path:
    """A fresh object-head reference for ``feed`` (any number of samples), made with eager PyTorch."""
    model = load_model(build.manifest.checkpoint.path)
    with torch.inference_mode():
        amplitude, phase = model.predict(torch.from_numpy(feed["diffraction"]))
    provenance = {
        "generator": "eager-pytorch (test)",
        "head": build.signature.head,
        "signature": build.signature.to_dict(),
        "weights_sha256": model_state_sha256(model),
        "inputs_sha256": arrays_sha256(feed),
    }
    save_reference(path, {"amplitude": amplitude.numpy(), "phase": phase.numpy()}, provenance)
    return path


def _zero_feed(build: BuildResult) -> dict[str, np.ndarray]:
    return {s.name: np.zeros(s.shape, np.float32) for s in build.signature.inputs}


def test_check_reads_the_reference_in_chunks_of_the_batch_and_never_whole(
    artifacts: Path,
    parity_build: BuildResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """9 samples through batch-2 artifacts: every reference read is one chunk, in order."""
    rng = np.random.default_rng(3)
    feed = {"diffraction": (rng.random((9, 1, 64, 64)) * 30).astype(np.float32)}
    np.savez(tmp_path / "many.npz", **feed)
    reference = _eager_reference(parity_build, feed, tmp_path / "many_ref.npz")

    reads: list[tuple[str, int, int]] = []
    original_rows = NpzRowReader.rows

    def recording_rows(self, key, start, stop):  # type: ignore[no-untyped-def]
        if self.path == reference:
            reads.append((key, start, stop))
        return original_rows(self, key, start, stop)

    original_load = np.load

    def guarded_load(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, Path)):
            assert Path(file) != reference, "the reference must not be loaded whole"
        return original_load(file, *args, **kwargs)

    monkeypatch.setattr(NpzRowReader, "rows", recording_rows)
    monkeypatch.setattr(np, "load", guarded_load)
    report = run_check(
        CheckOptions(
            artifacts=artifacts, inputs=tmp_path / "many.npz", reference=reference, device="cpu"
        )
    )

    assert report.verdict == "pass", [c.log_line() for c in report.comparisons]
    chunks = [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]  # the last one padded to the batch
    for name in ("amplitude", "phase"):
        assert [(a, b) for key, a, b in reads if key == name] == chunks


def test_replaying_a_long_reference_holds_one_chunk_in_memory(
    parity_build: BuildResult, tmp_path: Path
) -> None:
    """400 samples (6.5 MB per output) replayed in chunks of 2: peak memory stays far below
    one output array, so it does not grow with the reference's length."""
    rng = np.random.default_rng(5)
    samples = 400
    outputs = {
        spec.name: rng.random((samples, *spec.shape[1:]), dtype=np.float32)
        for spec in parity_build.signature.outputs
    }
    provenance = {
        "generator": "test",
        "head": parity_build.signature.head,
        "signature": parity_build.signature.to_dict(),
        "weights_sha256": None,
        "inputs_sha256": "0" * 64,
    }
    save_reference(tmp_path / "long.npz", outputs, provenance)
    one_output = outputs["amplitude"].nbytes
    del outputs
    feed = _zero_feed(parity_build)
    batch = parity_build.signature.inputs[0].shape[0]

    tracemalloc.start()
    try:
        reference = load_reference(tmp_path / "long.npz")
        with ReferenceRunner("tf-reference", parity_build.signature, reference) as runner:
            for _ in range(samples // batch):
                assert runner.infer(feed)["amplitude"].shape[0] == batch
            peak = tracemalloc.get_traced_memory()[1]
            with pytest.raises(ReferenceFormatError, match="holds 400 samples"):
                runner.infer(feed)  # replayed to the end: asking for more is an error
    finally:
        tracemalloc.stop()

    chunk_bytes = one_output * batch // samples
    assert peak < max(1 << 20, 8 * chunk_bytes) < one_output, (peak, chunk_bytes, one_output)


def test_streamed_inputs_digest_equals_the_whole_array_digest(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "positions": rng.random((300, 1, 2), dtype=np.float32),
        "diffraction": rng.random((300, 1, 4, 4), dtype=np.float32),
    }
    np.savez(tmp_path / "feed.npz", **arrays)

    with NpzRowReader(tmp_path / "feed.npz") as rows:
        assert inputs_sha256(rows, list(arrays)) == arrays_sha256(arrays)


def test_npz_rows_reads_deflated_members_in_order_and_backwards(tmp_path: Path) -> None:
    a = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    np.savez_compressed(tmp_path / "c.npz", a=a)
    with NpzRowReader(tmp_path / "c.npz") as rows:
        assert np.array_equal(rows.rows("a", 0, 2), a[0:2])
        assert np.array_equal(rows.rows("a", 2, 4), a[2:4])
        assert np.array_equal(rows.rows("a", 4, 6), a[4:5])  # cut at the end
        assert np.array_equal(rows.rows("a", 1, 3), a[1:3])  # a jump back restarts the member
        assert rows.rows("a", 7, 9).shape == (0, 3)  # past the end: nothing, never everything


def test_load_reference_reads_shapes_and_refuses_pickled_arrays(tmp_path: Path) -> None:
    provenance = {
        "generator": "test",
        "head": "object",
        "signature": {},
        "weights_sha256": None,
        "inputs_sha256": "0" * 64,
    }
    save_reference(tmp_path / "r.npz", {"amplitude": np.ones((3, 2), np.float32)}, provenance)
    assert load_reference(tmp_path / "r.npz").shapes == {"amplitude": (3, 2)}

    np.savez(tmp_path / "r.npz", amplitude=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ReferenceFormatError, match="pickled or corrupt.*pickled object array"):
        load_reference(tmp_path / "r.npz")
