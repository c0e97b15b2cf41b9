"""Any number of samples through a model whose batch is fixed: split, pad, run, unpad.

An artifact's batch ``B`` is part of its signature (:mod:`export.signature`): ``model.onnx``
accepts exactly ``B`` samples. :func:`run_in_fixed_batches` cuts a feed of ``n`` samples into
chunks of ``B``, pads the last chunk to ``B`` by repeating its last sample, runs each chunk and
cuts the outputs back to ``n``. It is the one implementation of that rule: a scan's batches in
:class:`export.predict.Predictor` and a served request, or a dynamic batch of several, in
:mod:`export.serving.handler` go through it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from export.errors import SignatureError

__all__ = ["BatchRun", "pad_to_batch", "run_in_fixed_batches", "samples_in"]

# one run of the model on exactly B samples: inputs by name -> outputs by name
BatchRun = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def samples_in(feed: Mapping[str, np.ndarray]) -> int:
    """The number of samples (the leading axis) every input of ``feed`` holds.

    Raises:
        SignatureError: (exit 2) an empty feed, a scalar input, or inputs of different lengths.
    """
    lengths = {
        name: (np.shape(value)[0] if np.ndim(value) else None) for name, value in feed.items()
    }
    if not lengths or None in lengths.values():
        raise SignatureError(
            f"a feed needs every input with a leading sample axis; got {lengths or 'no inputs'}"
        )
    if len(set(lengths.values())) != 1:
        raise SignatureError(
            f"the inputs hold different numbers of samples ({lengths}); send as many of each"
        )
    return int(next(iter(lengths.values())))  # type: ignore[arg-type]


def pad_to_batch(feed: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """``b <= batch`` samples padded to ``batch`` by repeating the last one (contiguous)."""
    b = samples_in(feed)
    if not 0 < b <= batch:
        raise SignatureError(f"{b} samples do not fit one batch of {batch}")
    return {
        name: np.ascontiguousarray(
            value
            if b == batch
            else np.concatenate([value, np.repeat(value[-1:], batch - b, axis=0)])
        )
        for name, value in feed.items()
    }


def run_in_fixed_batches(
    run: BatchRun, feed: Mapping[str, np.ndarray], batch: int
) -> dict[str, np.ndarray]:
    """Outputs for every sample of ``feed``, computed ``batch`` samples at a time.

    Args:
        run: the model on exactly ``batch`` samples (``OnnxHost.run``, a remote runner).
        feed: inputs by name, each ``(n, ...)`` with the same ``n >= 1``.
        batch: the artifact's fixed batch ``B``.

    Returns:
        Outputs by name, each ``(n, ...)``: the padding dropped, chunks concatenated in order.

    Raises:
        SignatureError: (exit 2) an empty feed or inputs of different lengths; whatever ``run``
            raises for a chunk.
    """
    n = samples_in(feed)
    if n == 0:
        raise SignatureError("a feed of 0 samples: send at least one")
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch):
        chunk = {name: value[start : start + batch] for name, value in feed.items()}
        b = min(batch, n - start)
        for name, value in run(pad_to_batch(chunk, batch)).items():
            parts.setdefault(name, []).append(value[:b])
    return {
        name: chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        for name, chunks in parts.items()
    }
