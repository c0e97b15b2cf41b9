"""Interleaved timing: every candidate runs once per round, rounds repeat until time is up.

Machine noise (other jobs on a shared host, clock changes) then hits every candidate alike, and
each round starts with a different candidate so that none always runs first (or right after the
largest one). Figures, never assertions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Samples", "interleave"]

log = logging.getLogger(__name__)


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
    candidates: Mapping[str, Callable[[], object]],
    seconds: float,
    min_rounds: int = 3,
    warmup: int = 1,
    what: str = "timing",
) -> dict[str, Samples]:
    """Time every candidate ``warmup`` untimed rounds, then timed rounds until ``seconds`` have
    passed and at least ``min_rounds`` rounds are done. A progress line on stderr (logging) every
    ~10 s."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
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
            log.info("%s: %d rounds, %.0f s", what, rounds, last_note - start)
    return {name: Samples(tuple(t)) for name, t in times.items()}
