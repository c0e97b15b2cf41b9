"""The served model's inference callable: requests in, one response per request, torch-free.

Triton's dynamic batcher hands :class:`InferenceHandler` the requests it put together (each a
dict of inputs of ``1..max_batch_size`` samples). Each request is checked (:func:`check_request`),
their samples joined and run through the artifact's fixed batch by
:func:`export.fixed_batch.run_in_fixed_batches`, the rule :class:`export.predict.Predictor` runs
scans by, and the outputs cut back per request. :class:`ServeStats` logs one line every
``log_every`` requests: requests and patterns per second and the latency percentiles.

Triton itself refuses a request with a wrong input name, data type, sample dims or more samples
than the maximum, before batching, with a message naming them; the checks here repeat that for
callers that bypass Triton and add what Triton cannot see: NaN and Inf. PyTriton 0.7.0 answers
a batch of requests with one error (it has no per-request error), so a request with NaN fails
the requests batched with it too; the message says which request it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from export.errors import RequestError
from export.fixed_batch import BatchRun, run_in_fixed_batches
from export.triton_model import ServedBatching, TritonModel

__all__ = ["InferenceHandler", "LatencySummary", "ServeStats", "check_request"]

log = logging.getLogger(__name__)


def check_request(
    request: Mapping[str, Any], model: TritonModel, batching: ServedBatching
) -> dict[str, np.ndarray]:
    """One request's inputs, checked against the served model: the input names, float32,
    ``(b, *dims)`` with ``1 <= b <= max_batch_size`` the same for every input, all finite.

    Raises:
        RequestError: naming every problem found and what to send instead.
    """
    names = set(request.keys())
    problems = []
    if names != set(model.input_names):
        problems.append(
            f"inputs {sorted(names)}, the model takes {model.input_names} "
            "(rename or add the inputs)"
        )
    sizes = set()
    for tensor in model.inputs:
        if tensor.name not in names:
            continue
        value = np.asarray(request[tensor.name])
        expected = f"{tensor.dtype}[b, {', '.join(map(str, tensor.dims))}]"
        if value.dtype != tensor.numpy_dtype:
            problems.append(
                f"input {tensor.name!r} is {value.dtype}, expected {expected}: send "
                f"{tensor.wire_type} (.astype(np.float32))"
            )
        elif value.ndim != 1 + len(tensor.dims) or tuple(value.shape[1:]) != tensor.dims:
            problems.append(
                f"input {tensor.name!r} has shape {list(value.shape)}, expected {expected}"
            )
        elif not np.isfinite(value).all():
            sample = int(np.argwhere(~np.isfinite(value))[0][0])
            problems.append(
                f"input {tensor.name!r} holds NaN or Inf (first in sample {sample}); send "
                "finite values"
            )
        if value.ndim:
            sizes.add(int(value.shape[0]))
    if len(sizes) > 1:
        problems.append(f"the inputs hold different numbers of samples {sorted(sizes)}")
    elif sizes and not 1 <= (b := sizes.pop()) <= batching.max_batch_size:
        problems.append(
            f"{b} samples; send 1 to {batching.max_batch_size} per request (--max-batch-size)"
        )
    if problems:
        raise RequestError("; ".join(problems))
    return {t.name: np.asarray(request[t.name]) for t in model.inputs}


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of latencies in seconds (linear interpolation, as ``np.percentile``)."""

    p50: float
    p99: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        if not len(seconds):
            return cls(float("nan"), float("nan"))
        p50, p99 = np.percentile(np.asarray(seconds, dtype=np.float64), [50, 99])
        return cls(float(p50), float(p99))

    def describe(self) -> str:
        """``p50 12.3 ms, p99 40.1 ms``."""
        return f"p50 {1e3 * self.p50:.1f} ms, p99 {1e3 * self.p99:.1f} ms"


@dataclass
class ServeStats:
    """What the server did, counted across model instances (thread-safe).

    Attributes:
        log_every: requests between two throughput lines (0: no lines).
    """

    log_every: int = 1000
    requests: int = 0
    patterns: int = 0
    errors: int = 0  # requests answered with an error by the callable
    in_flight: int = 0
    _window: list[float] = field(default_factory=list)  # latency per request since the last line
    _window_start: float = 0.0  # when the window's first call started
    _window_patterns: int = 0
    _last_activity: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, requests: int) -> None:
        with self._lock:
            self.in_flight += requests
            self._last_activity = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last call started or ended; 0 while one runs."""
        with self._lock:
            return 0.0 if self.in_flight else time.monotonic() - self._last_activity

    def finished(self, sizes: Sequence[int], seconds: float, failed: bool) -> None:
        """``sizes``: samples per request of one call; ``seconds``: the call's time."""
        line = None
        with self._lock:
            self.in_flight -= len(sizes)
            self._last_activity = time.monotonic()
            if failed:
                self.errors += len(sizes)
                return
            self.requests += len(sizes)
            self.patterns += sum(sizes)
            if not self._window:  # a window starts with its first request, not with idle time
                self._window_start = time.perf_counter() - seconds
            self._window.extend([seconds] * len(sizes))
            self._window_patterns += sum(sizes)
            if self.log_every and len(self._window) >= self.log_every:
                line = self._line()
        if line:
            log.info("%s", line)

    def _line(self) -> str:
        now = time.perf_counter()
        elapsed = max(now - self._window_start, 1e-9)
        latency = LatencySummary.of(self._window)
        line = (
            f"served {len(self._window)} requests ({self._window_patterns} patterns) in "
            f"{elapsed:.1f} s: {len(self._window) / elapsed:.0f} requests/s, "
            f"{self._window_patterns / elapsed:.0f} patterns/s; latency in the model "
            f"{latency.describe()}; {self.requests} requests, {self.errors} errors since start"
        )
        self._window, self._window_patterns = [], 0
        return line


class InferenceHandler:
    """PyTriton's inference callable for one model instance.

    Args:
        run: the model on exactly ``model.batch`` samples (an ``OnnxHost.run`` of its own).
        model: what is served.
        batching: the served maximum per request.
        stats: shared by every instance.
    """

    def __init__(
        self, run: BatchRun, model: TritonModel, batching: ServedBatching, stats: ServeStats
    ) -> None:
        self.run, self.model, self.batching, self.stats = run, model, batching, stats

    def __call__(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
        start = time.perf_counter()
        self.stats.started(len(requests))
        sizes: list[int] = []
        try:
            feeds = []
            for i, request in enumerate(requests):
                try:
                    feeds.append(check_request(request, self.model, self.batching))
                except RequestError as exc:
                    raise RequestError(_which(i, len(requests)) + str(exc)) from None
                sizes.append(len(feeds[-1][self.model.inputs[0].name]))
            joined = {
                name: feeds[0][name]
                if len(feeds) == 1
                else np.concatenate([feed[name] for feed in feeds])
                for name in self.model.input_names
            }
            outputs = run_in_fixed_batches(self.run, joined, self.model.batch)
        except BaseException as exc:
            self.stats.finished([1] * len(requests), time.perf_counter() - start, failed=True)
            if isinstance(exc, RequestError):
                log.warning("answered with an error: %s", exc)
            else:
                log.exception("the model failed on %d requests", len(requests))
            raise
        bounds = np.cumsum([0, *sizes])
        responses = [
            {name: outputs[name][lo:hi] for name in self.model.output_names}
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        self.stats.finished(sizes, time.perf_counter() - start, failed=False)
        return responses


def _which(index: int, count: int) -> str:
    if count == 1:
        return "bad request: "
    return (
        f"request {index + 1} of the {count} Triton batched together is bad (PyTriton answers "
        "the whole batch with this error: the others may be sent again): "
    )
