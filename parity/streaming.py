"""Chunk streaming: the inputs (and the reference) go through the runners one fixed batch at a
time, so memory stays bounded by a chunk however many samples the set holds. The last chunk is
padded by repeating its last row, the padded rows' outputs dropped before comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from core.running_stats import array_peak, wrap_to_pi
from core.tolerances import PAIR_CLASSES, ToleranceTable
from export.signature import Signature, TensorSpec
from parity.pairs import Pair
from parity.runners import EagerRunner, ReferenceRunner, Runner
from ptycho_torch.npz import NpzRowReader

__all__ = ["batch_feed", "output_peaks", "stream"]

log = logging.getLogger(__name__)


def stream(
    inputs: NpzRowReader, n: int, signature: Signature, runners: list[Runner], pairs: list[Pair]
) -> None:
    """Run every (active) runner on each chunk of the ``n`` samples and update every pair."""
    batch = signature.inputs[0].shape[0]
    chunks = (n + batch - 1) // batch
    for index, (start, stop) in enumerate(_chunks(n, batch)):
        feed = batch_feed(inputs, signature, start, stop)
        outputs = {}
        for runner in runners:
            full = runner.infer(feed)
            outputs[runner.name] = {k: v[: stop - start] for k, v in full.items()}
        for pair in pairs:
            left, right = outputs[pair.left.name], outputs[pair.right.name]
            for spec in signature.outputs:
                name = spec.name
                weight = right.get(spec.weighted_by) if spec.weighted_by else None
                pair.accumulators[name].update(
                    left[name], right[name], sample_offset=start, weight=weight
                )
                _track_worst(pair, spec, left[name], right[name], start)
        if chunks > 1:
            log.info("parity: chunk %d/%d (samples %d-%d)", index + 1, chunks, start, stop - 1)


def output_peaks(
    inputs: NpzRowReader, n: int, signature: Signature, runners: list[Runner], table: ToleranceTable
) -> dict[str, float]:
    """``max |value|`` per output over the whole set, for tolerances with ``rtol_peak``.

    Taken from the reference rows when there is a reference (no inference), else from one
    extra pass of the eager runner; nothing is computed when no tolerance needs a peak.
    """
    needed = [
        name
        for name in signature.output_names
        if any(
            table.lookup(name, pc, r.actual_device).rtol_peak
            for pc in PAIR_CLASSES
            for r in runners
            if not isinstance(r, ReferenceRunner)
        )
    ]
    if not needed:
        return {}
    peaks = dict.fromkeys(needed, 0.0)
    reference = next((r for r in runners if isinstance(r, ReferenceRunner)), None)
    batch = signature.inputs[0].shape[0]
    if reference is not None:
        for start, stop in _chunks(n, batch):
            for name, rows in reference.rows(start, stop, needed).items():
                peaks[name] = max(peaks[name], array_peak(rows))
        source = "the reference"
    else:
        eager = next(r for r in runners if isinstance(r, EagerRunner))
        for start, stop in _chunks(n, batch):
            outputs = eager.infer(batch_feed(inputs, signature, start, stop))
            for name in needed:
                peaks[name] = max(peaks[name], array_peak(outputs[name][: stop - start]))
        source = f"{eager.name} (no reference)"
    log.info(
        "parity: peaks from %s for rtol_peak: %s",
        source,
        ", ".join(f"{k}={v:.4g}" for k, v in peaks.items()),
    )
    return peaks


def _pad(rows: np.ndarray, batch: int) -> np.ndarray:
    """Fill a short last chunk up to the fixed batch by repeating its last row (outputs dropped)."""
    if rows.shape[0] == batch:
        return rows
    filler = np.repeat(rows[-1:], batch - rows.shape[0], axis=0)
    return np.concatenate([rows, filler], axis=0)


def _chunks(n: int, batch: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each chunk of ``batch`` samples; the last may be shorter."""
    for start in range(0, n, batch):
        yield start, min(start + batch, n)


def batch_feed(
    inputs: NpzRowReader, signature: Signature, start: int, stop: int
) -> dict[str, np.ndarray]:
    """Samples ``start:stop`` of every input, padded up to the signature's batch."""
    batch = signature.inputs[0].shape[0]
    return {name: _pad(inputs.rows(name, start, stop), batch) for name in signature.input_names}


def _track_worst(
    pair: Pair, spec: TensorSpec, left: np.ndarray, right: np.ndarray, start: int
) -> None:
    name = spec.name
    if left.shape != right.shape:
        return
    with np.errstate(invalid="ignore"):
        diff = left.astype(np.float64) - right.astype(np.float64)
        diff = np.abs(wrap_to_pi(diff) if spec.wraps else diff)
    per_sample = np.nan_to_num(diff.reshape(diff.shape[0], -1).max(axis=1), nan=np.inf)
    i = int(np.argmax(per_sample))
    best = pair.worst.get(name)
    if best is None or per_sample[i] > best[0]:
        pair.worst[name] = (float(per_sample[i]), start + i, left[i].copy(), right[i].copy())
