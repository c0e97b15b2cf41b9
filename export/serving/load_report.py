"""The load test's results as plain data: :class:`LoadLevel` (one level of concurrent clients),
:class:`BareRate` (bare ONNX Runtime at the artifact's batch) and :class:`LoadReport` (the levels,
the bare figures and the machine), with a Markdown table and a JSON round trip. What made them:
:mod:`export.serving.load`. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.jsonio import write_json

__all__ = ["BareRate", "LoadLevel", "LoadReport"]


@dataclass(frozen=True)
class LoadLevel:
    """One load: ``clients`` threads, ``requests`` requests of ``batch`` patterns in all."""

    clients: int
    batch: int
    requests: int
    seconds: float
    failed: int
    wrong: int
    p50_ms: float
    p99_ms: float
    first_failure: str = ""

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    @property
    def patterns_per_s(self) -> float:
        return (self.requests - self.failed) * self.batch / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "requests_per_s": self.requests_per_s,
            "patterns_per_s": self.patterns_per_s,
        }


@dataclass(frozen=True)
class BareRate:
    """ONNX Runtime in one session of this process at the artifact's batch."""

    batch: int
    runs: int
    seconds: float
    p50_ms: float

    @property
    def patterns_per_s(self) -> float:
        return self.batch * self.runs / self.seconds


@dataclass(frozen=True)
class LoadReport:
    """A load test: the levels, bare ONNX Runtime before and after them, the machine."""

    url: str
    artifacts: str
    model: str
    batch: int
    levels: list[LoadLevel]
    bare: list[BareRate]
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def bare_patterns_per_s(self) -> float:
        """The mean of the bare measurements (before and after the load)."""
        return float(np.mean([b.patterns_per_s for b in self.bare]))

    def ratio(self, level: LoadLevel) -> float:
        return level.patterns_per_s / self.bare_patterns_per_s

    @property
    def requests(self) -> int:
        return sum(level.requests for level in self.levels)

    def table(self) -> str:
        """A Markdown table, one row per level, then the totals and the bare figures."""
        rows = [
            "| clients | patterns/request | requests | requests/s | patterns/s | vs bare ORT "
            "| p50 ms | p99 ms | failed | wrong |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for lv in self.levels:
            rows.append(
                f"| {lv.clients} | {lv.batch} | {lv.requests} | {lv.requests_per_s:.1f} | "
                f"{lv.patterns_per_s:.1f} | {self.ratio(lv):.2f} | {lv.p50_ms:.1f} | "
                f"{lv.p99_ms:.1f} | {lv.failed} | {lv.wrong} |"
            )
        bare = ", ".join(f"{b.patterns_per_s:.1f}" for b in self.bare)
        failed = sum(lv.failed for lv in self.levels)
        wrong = sum(lv.wrong for lv in self.levels)
        return "\n".join(
            [
                *rows,
                "",
                f"bare ONNX Runtime at batch {self.batch} (one session, this process): "
                f"{self.bare_patterns_per_s:.1f} patterns/s (before and after the load: {bare})",
                f"{self.requests} requests to {self.url} ({self.model!r}), {failed} failed, "
                f"{wrong} wrong",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "artifacts": self.artifacts,
            "model": self.model,
            "batch": self.batch,
            "levels": [lv.to_dict() for lv in self.levels],
            "bare": [{**asdict(b), "patterns_per_s": b.patterns_per_s} for b in self.bare],
            "bare_patterns_per_s": self.bare_patterns_per_s,
            "machine": self.machine,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        """The report :meth:`to_dict` wrote (derived figures recomputed, not read)."""
        return cls(
            data["url"],
            data["artifacts"],
            data["model"],
            data["batch"],
            [LoadLevel(**_fields_of(LoadLevel, lv)) for lv in data["levels"]],
            [BareRate(**_fields_of(BareRate, b)) for b in data["bare"]],
            dict(data.get("machine", {})),
        )

    def write_json(self, path: Path) -> None:
        write_json(path, self.to_dict())


def _fields_of(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}
