"""The load test of a served model: concurrent clients, bounded requests, every answer checked.

:func:`run_level` sends ``requests`` requests of ``batch`` patterns from ``clients`` threads,
each with its own connection (:class:`export.serving.client.TritonClient`), and checks every
response against ONNX Runtime's result for that request computed in this process beforehand
(:func:`expected_outputs`: the same fixed-batch rule, :func:`export.fixed_batch.run_in_fixed_batches`);
a response that is not bitwise equal is judged by the comparison kernel with the host's
tolerances (:func:`export.verify.tolerances_for`, what ``verify`` holds ONNX Runtime to).
It counts failed requests (an error or no answer) and wrong ones (an answer out of tolerance)
and times each request end to end. :func:`bare_onnxruntime` times the same model in one ONNX
Runtime session of this process at the artifact's batch, the figure a server is measured
against. ``python -m export serve-bench`` (:func:`run_load_test`) puts them together against
a server it starts on loopback; the results are :mod:`export.serving.load_report`'s. Torch-free.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.compare import ComparedOutput, compare_arrays
from export.errors import ServerError
from export.fixed_batch import run_in_fixed_batches
from export.host import OnnxHost
from export.serving.client import TritonClient
from export.serving.handler import LatencySummary
from export.serving.load_report import BareRate, LoadLevel, LoadReport
from export.signature import Signature
from export.triton_model import TritonModel
from export.verify import tolerances_for

__all__ = [
    "LoadOptions",
    "RequestPool",
    "ResponseJudge",
    "bare_onnxruntime",
    "expected_outputs",
    "run_level",
    "run_load_test",
]

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class RequestPool:
    """Requests of one size and ONNX Runtime's outputs for each, computed beforehand."""

    batch: int
    feeds: tuple[Feed, ...]
    expected: tuple[Feed, ...]

    def __len__(self) -> int:
        return len(self.feeds)


def expected_outputs(
    host: OnnxHost, samples: Mapping[str, np.ndarray], batch: int, count: int, seed: int = 0
) -> RequestPool:
    """``count`` requests of ``batch`` samples drawn from ``samples`` (with replacement, seeded)
    and what ONNX Runtime computes for each, at the artifact's fixed batch."""
    rng = np.random.default_rng(seed)
    n = len(next(iter(samples.values())))
    feeds, expected = [], []
    for _ in range(count):
        pick = rng.integers(0, n, size=batch)
        feed = {name: np.ascontiguousarray(value[pick]) for name, value in samples.items()}
        feeds.append(feed)
        expected.append(run_in_fixed_batches(host.run, feed, host.signature.inputs[0].shape[0]))
    return RequestPool(batch, tuple(feeds), tuple(expected))


class ResponseJudge:
    """Is a response ONNX Runtime's answer? Bitwise first; else the kernel, host tolerances."""

    def __init__(self, signature: Signature, device: str) -> None:
        self.specs = {s.name: s for s in signature.outputs}
        self.tolerances = tolerances_for(device)
        self.device = device

    def __call__(self, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> bool:
        for name, expected in want.items():
            value = got.get(name)
            if value is None or value.shape != expected.shape or value.dtype != expected.dtype:
                return False
            if np.array_equal(value, expected):
                continue
            spec = self.specs[name]
            weight = want.get(spec.weighted_by) if spec.weighted_by else None
            compared = ComparedOutput(
                name,
                "served",
                "onnxruntime",
                self.tolerances[name],
                wrap_phase=spec.wraps,
                device=self.device,
            )
            if not compare_arrays(compared, value, expected, weight).passed:
                return False
        return True


def run_level(
    connect: Callable[[], TritonClient],
    pool: RequestPool,
    clients: int,
    requests: int,
    judge: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], bool],
) -> LoadLevel:
    """``requests`` requests from ``clients`` threads, each request checked; bounded: every
    thread stops after its share, whatever the server answers."""
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[list[str]] = [[] for _ in range(clients)]
    wrong = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        try:
            connection = connect()
        except Exception as exc:  # noqa: BLE001 - counted: every request of this client fails
            barrier.wait()
            failures[i].extend([f"connect: {exc}"] * shares[i])
            return
        with connection:
            barrier.wait()
            for k in range(shares[i]):
                j = (i * 7919 + k) % len(pool)
                start = time.perf_counter()
                try:
                    got = connection.infer(pool.feeds[j])
                except ServerError as exc:
                    failures[i].append(str(exc))
                    continue
                latencies[i].append(time.perf_counter() - start)
                if not judge(got, pool.expected[j]):
                    wrong[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    every = [x for per in latencies for x in per]
    failed = [f for per in failures for f in per]
    latency = LatencySummary.of(every)
    return LoadLevel(
        clients,
        pool.batch,
        requests,
        seconds,
        len(failed),
        sum(wrong),
        1e3 * latency.p50,
        1e3 * latency.p99,
        failed[0] if failed else "",
    )


def bare_onnxruntime(host: OnnxHost, feed: Mapping[str, np.ndarray], seconds: float) -> BareRate:
    """Time ``host.run(feed)`` (one fixed batch) back to back for ``seconds`` after a warm-up."""
    host.run(feed)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        host.run(feed)
        times.append(time.perf_counter() - t)
    batch = len(next(iter(feed.values())))
    return BareRate(batch, len(times), sum(times), 1e3 * LatencySummary.of(times).p50)


def machine_now() -> dict[str, Any]:
    """Cores and load averages, for the record."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = []
    return {"cpus": os.cpu_count(), "load_average": load, "time": time.strftime("%H:%M:%S")}


@dataclass(frozen=True)
class LoadOptions:
    """What ``python -m export serve-bench`` sends."""

    clients: tuple[int, ...] = field(
        default=(1, 4, 16), metadata={"help": "concurrent clients of each level", "metavar": "C"}
    )
    requests: int = field(
        default=1000, metadata={"help": "requests per level (clients share them)"}
    )
    sizes: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "patterns per request of each level (default: 1 and the artifact's batch)",
            "metavar": "B",
        },
    )
    protocol: str = field(
        default="grpc",
        metadata={"help": "how clients talk to the server", "choices": ("grpc", "http")},
    )
    bare_seconds: float = field(
        default=10.0,
        metadata={"help": "seconds of bare ONNX Runtime timing before and after the load"},
    )
    pool: int = field(default=32, metadata={"help": "distinct requests per size, each checked"})

    def __post_init__(self) -> None:
        if not self.clients or min(self.clients) < 1:
            raise ValueError(f"clients must be >= 1, got {self.clients}")
        if self.requests < max(self.clients):
            raise ValueError(f"requests ({self.requests}) must be >= the most clients")
        if self.sizes and min(self.sizes) < 1:
            raise ValueError(f"sizes must be >= 1, got {self.sizes}")
        if self.protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be grpc or http, got {self.protocol!r}")
        if not self.bare_seconds > 0 or self.pool < 1:
            raise ValueError("bare_seconds must be > 0 and pool >= 1")


def run_load_test(
    host: OnnxHost,
    samples: Mapping[str, np.ndarray],
    urls: Mapping[str, str],
    name: str,
    options: LoadOptions,
    progress: Callable[[LoadLevel], None] | None = None,
    artifacts: str = "",
) -> LoadReport:
    """Bare ONNX Runtime, every level, bare ONNX Runtime again.

    Args:
        host: a session of the artifacts' model in this process (the expected outputs, bare).
        samples: the inputs requests are drawn from (the artifacts' ``inputs.npz``).
        urls: the server's ``{"http": ..., "grpc": ...}``.
        name: the served model's name.
        options: what to send.
        progress: called with each level as it finishes.
        artifacts: what was served, for the report.
    """
    model = TritonModel.from_signature(name, host.signature)
    sizes = options.sizes or tuple(sorted({1, model.batch}))
    pools = {b: expected_outputs(host, samples, b, options.pool, seed=b) for b in sizes}
    judge = ResponseJudge(host.signature, host.device)
    url = urls[options.protocol]
    machine = {"start": machine_now()}
    bare = [bare_onnxruntime(host, _fixed_feed(samples, model.batch), options.bare_seconds)]
    levels = []
    for batch in sizes:
        for clients in options.clients:
            level = run_level(
                lambda: TritonClient(url, model), pools[batch], clients, options.requests, judge
            )
            levels.append(level)
            if progress is not None:
                progress(level)
    bare.append(bare_onnxruntime(host, _fixed_feed(samples, model.batch), options.bare_seconds))
    machine["end"] = machine_now()
    return LoadReport(url, artifacts, name, model.batch, levels, bare, machine)


def _fixed_feed(samples: Mapping[str, np.ndarray], batch: int) -> Feed:
    """``batch`` samples (repeated when fewer are given): one fixed batch for bare timing."""
    n = len(next(iter(samples.values())))
    pick = np.arange(batch) % n
    return {name: np.ascontiguousarray(value[pick]) for name, value in samples.items()}
