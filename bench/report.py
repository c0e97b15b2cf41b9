"""What ``python -m export bench`` measured, as plain data: the table, JSON and plot are views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ptycho_torch.jsonio import write_json

__all__ = ["BatchResult", "BenchReport", "BenchRow", "Trial"]

SCHEMA = "ptychopinn-bench/1"


@dataclass(frozen=True)
class BenchRow:
    """One backend at one batch size; ``unavailable`` (the reason) instead of timings when it
    did not come up (ONNX Runtime's CUDA provider)."""

    runner: str
    batch: int
    providers: list[str] = field(default_factory=list)
    setting: str = ""  # session settings or eager mode it ran with
    rounds: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    patterns_per_s: float | None = None
    gflops: float | None = None
    fraction_of_ceiling: float | None = None
    speedup_vs_eager: float | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class Trial:
    """One measured setting: median ms per batch."""

    backend: str  # "onnxruntime" | "eager"
    setting: str
    p50_ms: float | None  # None: the setting could not run (``note`` says why)
    chosen: bool = False
    stage: str = "settings"  # "settings" | "binding" (the second ONNX Runtime round)
    note: str = ""
    threads: int | None = None  # intra-op threads of the setting (ONNX Runtime's or torch's)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "setting": self.setting,
            "p50_ms": self.p50_ms,
            "chosen": self.chosen,
            "stage": self.stage,
            "threads": self.threads,
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class BatchResult:
    """Every backend at one batch size, and the ceiling measured in the same rounds."""

    batch: int
    folder: str
    build_seconds: float
    ceiling_gflops: float  # the fastest GEMM probe in the same rounds
    rows: list[BenchRow]
    probes_gflops: dict[str, float] = field(default_factory=dict)  # every GEMM probe's rate


@dataclass
class BenchReport:
    """The whole run: machine, model, ceiling, tuning, batches and the per-layer view."""

    machine: dict[str, Any]
    model: dict[str, Any]
    ceiling_probe: str
    threads: dict[str, Any]  # --threads' choice; "threads": torch's count really used, "chosen_by"
    batches: list[BatchResult] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    layers_batch: int | None = None
    saved_tuning: str | None = None
    schema: str = SCHEMA

    @property
    def unavailable(self) -> list[BenchRow]:
        return [r for b in self.batches for r in b.rows if r.unavailable]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        write_json(path, self.to_dict())

    def table(self) -> str:
        """The report as text: header, one line per backend and batch, the per-layer view."""
        m, mach = self.model, self.machine
        lines = [
            f"model: N={m['N']} C={m['C']} n_filters_scale={m['n_filters_scale']} {m['head']} head, "
            f"{m['gflop_per_pattern']:.3f} GFLOP per pattern ({m['conv_calls']} conv calls)",
            f"machine: {mach['cpu']}, {mach['physical_cores']} cores, device {mach['device']}, "
            f"torch threads {self.threads.get('threads')} for every torch backend "
            f"(requested {self.threads.get('requested')}"
            + (f", chosen by {self.threads['chosen_by']}" if self.threads.get("chosen_by") else "")
            + f"), load average {mach['load_before']} -> {mach['load_after']}",
            f"ceiling: {self.ceiling_probe}, timed in the same rounds as each batch",
        ]
        if self.tuning:
            lines.append(
                f"tuning: ONNX Runtime {self.tuning['onnxruntime_text']}; eager {self.tuning['eager']}"
                + (f" (saved to {self.saved_tuning})" if self.saved_tuning else "")
            )
        lines.append("")
        lines.append(
            f"{'batch':>5} {'runner':<20} {'p50 ms':>9} {'p99 ms':>9} {'patterns/s':>11} "
            f"{'GFLOP/s':>8} {'ceiling':>8} {'of ceil':>8} {'vs eager':>8}"
        )
        for b in self.batches:
            for r in b.rows:
                if r.unavailable:
                    lines.append(f"{b.batch:>5} {r.runner:<20} unavailable: {r.unavailable}")
                    continue
                lines.append(
                    f"{b.batch:>5} {r.runner:<20} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} "
                    f"{r.patterns_per_s:>11.1f} {r.gflops:>8.1f} {b.ceiling_gflops:>8.1f} "
                    f"{r.fraction_of_ceiling:>8.2f} {r.speedup_vs_eager:>7.2f}x"
                )
        if self.layers:
            lines += ["", _layers_header(self.layers_batch, self.layers[0]["ceiling_gflops"])]
            total = sum(row["flops"] * row["count"] for row in self.layers)
            for row in self.layers:
                ort = (
                    f"{row['onnxruntime_gflops']:>9.1f} {row['onnxruntime_fraction']:>5.2f}"
                    if row["onnxruntime_ms"] is not None
                    else f"{'-':>9} {'-':>5}"
                )
                lines.append(
                    f"{row['shape']:<24} {row['count']:>5} {row['flops'] * row['count'] / 1e9:>7.3f} "
                    f"{row['flops'] * row['count'] / total:>6.1%} "
                    f"{row['torch_gflops']:>9.1f} {row['torch_fraction']:>5.2f} {ort}"
                )
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        """Throughput and fraction of the ceiling vs batch, one line per backend (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        runners = sorted({r.runner for b in self.batches for r in b.rows if not r.unavailable})
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
        for name in runners:
            points = [
                (b.batch, r) for b in self.batches for r in b.rows if r.runner == name and r.p50_ms
            ]
            xs = [p[0] for p in points]
            left.plot(xs, [p[1].patterns_per_s for p in points], marker="o", label=name)
            right.plot(xs, [p[1].fraction_of_ceiling for p in points], marker="o", label=name)
        m = self.model
        for ax, label in ((left, "patterns/s"), (right, "fraction of GEMM ceiling")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        right.set_ylim(bottom=0)
        left.legend(fontsize=7)
        fig.suptitle(
            f"N={m['N']} s={m['n_filters_scale']}, {m['gflop_per_pattern']:.2f} GFLOP/pattern, "
            f"{self.machine['device']}, {self.machine['cpu']}",
            fontsize=9,
        )
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _layers_header(batch: int | None, ceiling: float) -> str:
    return (
        f"per-layer view: each conv shape alone at batch {batch}, against a ceiling of "
        f"{ceiling:.1f} GFLOP/s\n"
        f"{'shape (in->out k @out)':<24} {'calls':>5} {'GFLOP':>7} {'share':>6} "
        f"{'torch':>9} {'frac':>5} {'onnxrt':>9} {'frac':>5}"
    )
