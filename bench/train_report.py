"""What ``python -m export bench-train`` measured, as plain data: the table and JSON are views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.step_parts import StepProfile
from ptycho_torch.jsonio import write_json

__all__ = ["StepTiming", "TrainBenchReport"]

SCHEMA = "ptychopinn-bench-train/1"


@dataclass(frozen=True)
class StepTiming:
    """One training step, timed in the interleaved rounds."""

    name: str  # "ours" | "ours, plain" | "ours, bf16-mixed" | "keras" ...
    setting: str  # what it runs (speed settings, or the Keras step)
    rounds: int
    p50_ms: float
    p10_ms: float
    p90_ms: float
    patterns_per_s: float
    first_loss: float  # the loss of the first (untimed) step: the same for every float32 step


@dataclass(frozen=True)
class TrainBenchReport:
    """Steady-state training steps at one configuration and thread count."""

    N: int
    n_filters_scale: int
    gridsize: int
    batch: int
    threads: int
    cpu: str
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    uptime: str  # `uptime` at the end, as the log entries quote it
    timings: tuple[StepTiming, ...]
    keras_unavailable: str | None = None  # why there is no Keras row
    profile: StepProfile | None = None  # the first step's breakdown (profiled apart)
    versions: dict[str, str] = field(default_factory=dict)
    omp_wait: str = ""  # OMP_WAIT_POLICY / GOMP_SPINCOUNT in effect (ptycho_torch.thread_option)

    def ratio(self, name: str, against: str = "keras") -> float | None:
        """Patterns/s of ``name`` over those of ``against`` (None: either is missing)."""
        rows = {t.name: t for t in self.timings}
        if name not in rows or against not in rows:
            return None
        return rows[name].patterns_per_s / rows[against].patterns_per_s

    def table(self) -> str:
        """The timings (and the breakdown) as Markdown."""
        head = (
            f"N={self.N}, gridsize {self.gridsize}, n_filters_scale {self.n_filters_scale}, "
            f"batch {self.batch}, {self.threads} thread(s) ({self.omp_wait or _TORCH_WAIT}), "
            f"{self.cpu}; load average "
            f"{_load(self.load_before)} before, {_load(self.load_after)} after; {self.uptime}"
        )
        lines = [
            head,
            "",
            "| step | setting | rounds | ms per step (p50) | p10-p90 | patterns/s | vs keras |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in self.timings:
            ratio = self.ratio(t.name)
            lines.append(
                f"| {t.name} | {t.setting} | {t.rounds} | {t.p50_ms:.1f} | "
                f"{t.p10_ms:.1f}-{t.p90_ms:.1f} | {t.patterns_per_s:.1f} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} |"
            )
        if "ACTIVE" in self.omp_wait.upper():
            lines += ["", _SPINNING]
        if self.keras_unavailable:
            lines += ["", f"No Keras step: {self.keras_unavailable}"]
        losses = ", ".join(f"{t.name} {t.first_loss:.6g}" for t in self.timings)
        lines += ["", f"First-step loss (same weights, same batch): {losses}"]
        if self.profile is not None:
            lines += ["", f"Where a step of '{self.timings[0].name}' goes (profiled apart):", ""]
            lines += [self.profile.table()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["schema"] = SCHEMA
        return values

    def write_json(self, path: Path) -> None:
        write_json(path, self.to_dict())


_TORCH_WAIT = "OpenMP waits as torch has it"
_SPINNING = (
    "OMP_WAIT_POLICY=ACTIVE: torch's idle threads spin through every Keras step and take a "
    "core from it, so the ratio flatters ours; unset it for a fair comparison."
)


def _load(load: tuple[float, ...]) -> str:
    return "/".join(f"{v:.2f}" for v in load) if load else "n/a"
