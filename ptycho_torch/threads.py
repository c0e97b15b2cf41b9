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
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ptycho_torch.thread_option import AUTO, DEFAULT, parse_threads

__all__ = [
    "ThreadChoice",
    "cpu_kind",
    "logical_cpus",
    "parse_threads",
    "physical_cores",
    "set_threads",
]

logger = logging.getLogger(__name__)

_GOOD_ENOUGH = 1.10  # fewer threads win unless the fastest count is over 10% faster


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
        threads = _fewest_good_enough(timings)
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


def _measure(candidates: range, rounds: int = 5) -> dict[int, float]:
    """Median ms of a training-sized convolution (forward + backward) per thread count.

    The counts are timed interleaved (each round runs every count once, alternating which goes
    first) so that another job starting or stopping mid-measurement hits every count alike;
    timed one count after the other, a 10 ms probe once called 1 and 2 threads a tie on a
    machine where the model ran 1.8x faster on 2. The convolution (64 -> 64 channels, 8 x 32 x
    32) is large enough to scale with threads as the model does (1.68x vs the model's 1.80x at
    2 threads, idle 2-core machine) and takes about 0.4 s in all.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 32, 32, generator=generator, requires_grad=True)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    previous = torch.get_num_threads()
    counts = list(candidates)
    samples: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for n in counts:  # warm-up: one call per count
            torch.set_num_threads(n)
            conv(x).sum().backward()
        for r in range(rounds):
            for n in counts if r % 2 == 0 else counts[::-1]:
                torch.set_num_threads(n)
                start = time.perf_counter()
                conv(x).sum().backward()
                samples[n].append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return {n: round(sorted(t)[len(t) // 2], 3) for n, t in samples.items()}


def _fewest_good_enough(timings: dict[int, float]) -> int:
    best = min(timings.values())
    return min(n for n, ms in timings.items() if ms <= best * _GOOD_ENOUGH)
