"""How many CPU threads torch uses: ``auto`` (measured, at most the physical cores), a number, or
``default`` (torch's own default, left as it is: for comparison).

torch's default intra-op thread count is the number of logical CPUs, which oversubscribes a small
shared machine (issue 13: one thread trained the demo 3-4x faster than the default on a busy
2-core machine). Commands take ``--threads auto|N|default`` and call :func:`set_threads`::

    choice = set_threads("auto")  # ThreadChoice(threads=1, requested='auto', ...)
    logger.info("%s", choice)     # record choice.to_dict() next to the results

``auto`` times a convolution at 1 .. physical-core threads in this process (interleaved) and keeps
the fewest threads within 10% of the fastest, so it follows the load at the time it is measured:
pass a number for a run that must be reproducible (the thread count changes float results).

The timer (:func:`interleave`) and the rule (:func:`fewest_threads`) are the ones ``python -m
export bench`` tunes with too (its margin is 5%).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import torch

from ptycho_torch.thread_option import AUTO, DEFAULT, parse_threads

__all__ = [
    "Samples",
    "ThreadChoice",
    "at_threads",
    "cpu_kind",
    "fewest_threads",
    "interleave",
    "logical_cpus",
    "physical_cores",
    "set_threads",
]

logger = logging.getLogger(__name__)

_AUTO_WITHIN = 0.10  # --threads auto: fewer threads win unless the fastest is over 10% faster

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count a command used and how it was chosen."""

    threads: int  # what torch.set_num_threads received
    requested: str  # "auto" or the number given
    physical_cores: int  # usable physical cores of this process (affinity applied)
    logical_cpus: int  # usable logical CPUs of this process
    timings_ms: dict[int, float] = field(default_factory=dict)  # auto: threads -> median ms

    def to_dict(self) -> dict[str, object]:
        """Plain values (for checkpoints, manifests and JSON reports)."""
        values = asdict(self)
        values["timings_ms"] = {str(k): v for k, v in self.timings_ms.items()}
        return values

    def record(self, used: int, tuned: bool) -> dict[str, object]:
        """:meth:`to_dict` with the count really used (``threads``; a tuning may have replaced
        the choice) and where it came from (``chosen_by``; ``before_tuning``: the choice)."""
        record = self.to_dict()
        if tuned:
            chosen_by = "tuning"
            record["before_tuning"] = self.threads  # what auto measured before the tuning
        elif self.requested == DEFAULT:
            chosen_by = "torch's default"
        elif self.requested == AUTO:
            chosen_by = "measured at start"
        else:
            chosen_by = "given"
        record.update(threads=used, chosen_by=chosen_by)
        return record

    def __str__(self) -> str:
        how = "measured" if self.timings_ms else "given"
        if self.requested == DEFAULT:
            how = "torch's default, not set"
        return (
            f"threads {self.threads} ({how}; requested {self.requested}; "
            f"{self.physical_cores} physical cores, {self.logical_cpus} logical CPUs)"
        )


def set_threads(value: str | int) -> ThreadChoice:
    """Resolve ``value`` (``"auto"``, N or ``"default"``) and apply it with ``torch.set_num_threads``.

    ``"default"`` leaves torch's thread count as it is and records it.

    Raises:
        ValueError: ``value`` is not ``"auto"``, ``"default"`` or an integer >= 1.
    """
    requested = parse_threads(value)
    cores, cpus = physical_cores(), logical_cpus()
    timings: dict[int, float] = {}
    if requested == AUTO:
        timings = _measure(range(1, cores + 1))
        threads = fewest_threads(timings, lambda n: n, _AUTO_WITHIN)
    elif requested == DEFAULT:
        threads = torch.get_num_threads()
    else:
        threads = int(requested)
        if threads > cpus:
            logger.warning(
                "--threads %d is more than the %d logical CPUs this process may use; "
                "expect oversubscription",
                threads,
                cpus,
            )
    if requested != DEFAULT:
        torch.set_num_threads(threads)
    choice = ThreadChoice(threads, str(requested), cores, cpus, timings)
    logger.info("%s", choice)
    return choice


def logical_cpus() -> int:
    """Logical CPUs this process may run on (CPU affinity, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once).

    Reads ``/sys/devices/system/cpu/cpu*/topology`` on Linux; elsewhere it assumes no
    hyper-threading (the logical CPU count).
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return logical_cpus()
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))


def cpu_kind() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@dataclass(frozen=True)
class Samples:
    """Seconds per call of one candidate, in the order they were taken."""

    seconds: tuple[float, ...]

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (``q`` in 0..1) of the samples."""
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return self.quantile(0.5)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    def __len__(self) -> int:
        return len(self.seconds)


def interleave(
    candidates: Mapping[K, Callable[[], object]],
    seconds: float,
    min_rounds: int = 3,
    warmup: int = 1,
    what: str = "timing",
) -> dict[K, Samples]:
    """Time every candidate ``warmup`` untimed rounds, then timed rounds until ``seconds`` have
    passed and at least ``min_rounds`` rounds are done. A progress line on stderr (logging) every
    ~10 s.

    Each round runs every candidate once, so machine noise (other jobs on a shared host, clock
    changes) hits every candidate alike, and each round starts with a different candidate so
    that none always runs first (or right after the largest one). Figures, never assertions.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[K, list[float]] = {name: [] for name in names}
    start = last_note = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < seconds:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            t0 = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
        if time.perf_counter() - last_note > 10:
            last_note = time.perf_counter()
            logger.info("%s: %d rounds, %.0f s", what, rounds, last_note - start)
    return {name: Samples(tuple(t)) for name, t in times.items()}


def at_threads(n: int, fn: Callable[..., object], *args: object) -> Callable[[], object]:
    """A candidate for :func:`interleave`: ``fn(*args)`` after ``torch.set_num_threads(n)``
    (timed with it; the caller restores the count afterwards)."""
    return partial(_call_at_threads, n, fn, *args)


def _call_at_threads(n: int, fn: Callable[..., object], *args: object) -> object:
    torch.set_num_threads(n)
    return fn(*args)


def fewest_threads(ms: Mapping[K, float], threads: Callable[[K], int | None], within: float) -> K:
    """The key with the fewest threads among those within ``within`` (0.05: 5%) of the fastest
    (the faster of equal counts; ``None`` threads count as 0): a thread left free serves the
    next request or the rest of the machine."""
    best = min(ms.values())
    return min(
        (k for k, v in ms.items() if v <= best * (1 + within)),
        key=lambda k: (threads(k) or 0, ms[k]),
    )


def _measure(counts: range, rounds: int = 5) -> dict[int, float]:
    """Median ms of a training-sized convolution (forward + backward) per thread count.

    The counts are timed interleaved (:func:`interleave`, after one warm-up call per count) so
    that another job starting or stopping mid-measurement hits every count alike; timed one
    count after the other, a 10 ms probe once called 1 and 2 threads a tie on a machine where
    the model ran 1.8x faster on 2. The convolution (64 -> 64 channels, 8 x 32 x 32) is large
    enough to scale with threads as the model does (1.68x vs the model's 1.80x at 2 threads,
    idle 2-core machine) and takes about 0.4 s in all.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 32, 32, generator=generator, requires_grad=True)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)

    def step() -> None:
        conv(x).sum().backward()

    previous = torch.get_num_threads()
    try:
        runs = {n: at_threads(n, step) for n in counts}
        samples = interleave(runs, 0.0, rounds, what="--threads auto")
    finally:
        torch.set_num_threads(previous)
    return {n: round(1e3 * s.p50, 3) for n, s in samples.items()}
