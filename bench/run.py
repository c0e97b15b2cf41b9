"""``python -m export bench``: every backend against the machine's own limit, batch by batch.

For each batch size (the artifacts' own, or others built on the fly into a temporary folder:
:mod:`bench.batches`), eager PyTorch, TorchScript, ``.pt2`` and ONNX Runtime are timed
interleaved with a GEMM probe (:mod:`bench.ceiling`) after warm-up, so each backend's achieved
GFLOP/s (FLOPs counted from the model's convolutions, :mod:`bench.flops`) is a fraction of a
ceiling measured in the same rounds. Before that, :mod:`bench.tuning` measures ONNX Runtime
thread counts and graph optimisation levels and eager's modes and torch thread counts (with
``--threads auto``, 1 .. the physical cores for both, so neither is compared at more threads
than the other) and keeps the fastest: the torch count then serves every torch backend (eager,
TorchScript, ``.pt2``) and the report records it (``--save-tuning`` records ONNX Runtime's
settings in the manifest, never ones measured on a busy machine: :mod:`bench.machine_load`);
after it, the per-layer view
(:mod:`bench.layers`) times each conv shape alone. Figures, never assertions: the
machines are shared and noisy.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.batch_timing import BatchTimer, read_feed
from bench.eager_tuning import EagerMode
from bench.machine_load import check_idle, read_load, settings_to_record
from bench.report import BenchReport
from core.tolerances import DEVICES, Device
from export.manifest import Manifest
from export.session import SessionSettings
from ptycho_torch.thread_option import parse_threads

if TYPE_CHECKING:
    from bench.flops import ConvShape
    from ptycho_torch.threads import ThreadChoice

__all__ = ["BenchOptions", "parse_batches", "run_bench"]

log = logging.getLogger(__name__)


def parse_batches(text: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]`` (sorted, unique); ``"own"`` -> ``[]`` (the artifacts' own).

    Raises:
        ValueError: anything but comma-separated integers >= 1.
    """
    if text.strip().lower() in ("", "own"):
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = [0]
    if any(v < 1 for v in values):
        raise ValueError(f"batch must be comma-separated integers >= 1 (e.g. 1,8,32), got {text!r}")
    return sorted(set(values))


@dataclass(frozen=True)
class BenchOptions:
    """What ``python -m export bench`` measures (each default lives here)."""

    artifacts: Path = field(
        default=Path("artifacts"), metadata={"help": "folder written by `python -m export build`"}
    )
    batch: str = field(
        default="own",
        metadata={
            "help": "batch sizes, e.g. 1,8,32,128: others than the artifacts' own (own) are "
            "built into a temporary folder"
        },
    )
    device: Device = field(default="cpu", metadata={"help": "device", "choices": DEVICES})
    seconds: float = field(
        default=10.0,
        metadata={"help": "timed seconds per batch size (and per tuning step and layer view)"},
    )
    repeats: int = field(default=5, metadata={"help": "at least this many timed rounds"})
    warmup: int = field(default=2, metadata={"help": "untimed rounds per backend first"})
    # --threads, the one option of every command (ptychopinn.command): auto tries 1..cores for
    # torch and ONNX Runtime in the tuning (torch measured alone with --no-tune), N uses N for
    # both, default leaves torch its own
    threads: str = "auto"
    tune: bool = field(
        default=True,
        metadata={
            "help": "measure ONNX Runtime settings, eager modes and torch threads first, keep "
            "the fastest"
        },
    )
    layers: bool = field(default=True, metadata={"help": "time each conv shape alone"})
    save_tuning: bool = field(
        default=False,
        metadata={
            "help": "record the chosen ONNX Runtime settings in the artifacts' manifest (refused "
            "when the 1-minute load average was above the core count during the tuning)"
        },
    )
    save_tuning_anyway: bool = field(
        default=False,
        metadata={
            "help": "--save-tuning even on a busy machine: the settings are recorded with the "
            "load they were measured under"
        },
    )

    def __post_init__(self) -> None:
        parse_batches(self.batch)
        parse_threads(self.threads)  # ValueError names --threads
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.records_tuning and not self.tune:
            raise ValueError("save_tuning needs the tuning: drop --no-tune")

    @property
    def records_tuning(self) -> bool:
        """Whether the chosen ONNX Runtime settings go into the manifest."""
        return self.save_tuning or self.save_tuning_anyway

    @property
    def batches(self) -> list[int]:
        return parse_batches(self.batch)


def run_bench(options: BenchOptions) -> BenchReport:
    """Measure; see the module docstring. On CUDA, ONNX Runtime's CUDA provider that does not
    come up is a row with the reason (``BenchReport.unavailable``; the command exits 3).

    Raises:
        ManifestError, ArtifactsChangedError: the artifacts folder does not verify.
        EnvironmentUnavailable: (exit 3) CUDA requested and torch sees none.
    """
    import torch

    from bench.ceiling import gemm_probe
    from bench.flops import conv_shapes
    from export.manifest import read_manifest
    from export.session import save_session_settings
    from parity.precision import apply_precision_policy
    from parity.runners import torch_device
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.threads import physical_cores, set_threads

    apply_precision_policy()
    load_before = list(read_load().averages)
    manifest = read_manifest(options.artifacts)  # benchmark what was built, nothing else
    choice = set_threads(options.threads)
    torch_device(options.device)  # EnvironmentUnavailable (exit 3) for a missing CUDA
    model = load_model(manifest.weights_path(options.artifacts))
    calls = conv_shapes(model)
    report = _new_report(options, manifest, model, calls, load_before, choice)
    session, eager_mode, tuned = _tuned_settings(options, manifest, choice, report)
    torch_threads = eager_mode.threads or choice.threads
    if options.tune or choice.requested != "default":
        torch.set_num_threads(torch_threads)  # every torch backend timed from here on
    report.threads = choice.record(torch_threads, tuned)
    probe = gemm_probe(
        options.device, max(torch_threads, session.intra_op_threads or physical_cores())
    )
    report.ceiling_probe = probe.describe()
    timer = BatchTimer(
        options.artifacts,
        manifest,
        options.device,
        probe,
        report.model["flops_per_pattern"],
        session,
        eager_mode,
        options.seconds,
        options.repeats,
        options.warmup,
    )
    with tempfile.TemporaryDirectory(prefix="ptychopinn-bench-") as workdir:
        for batch in options.batches or [timer.own_batch]:
            report.batches.append(timer.time(batch, Path(workdir)))
    if options.layers:
        _time_layers(options, report, calls, timer)
    if options.records_tuning:
        save_session_settings(options.artifacts, session)
        report.saved_tuning = str(options.artifacts / "manifest.json")
        log.info("bench: recorded ONNX Runtime settings in %s", report.saved_tuning)
    report.machine["load_after"] = list(read_load().averages)
    return report


def _new_report(
    options: BenchOptions,
    manifest: Manifest,
    model: Any,
    calls: list[ConvShape],
    load_before: list[float],
    choice: ThreadChoice,
) -> BenchReport:
    """The report's machine and model sections; the measurements are added as they are made."""
    from ptycho_torch.threads import cpu_kind, physical_cores

    flops = sum(c.flops for c in calls)
    return BenchReport(
        machine={
            "cpu": cpu_kind(),
            "physical_cores": physical_cores(),
            "device": _device_name(options.device),
            "load_before": load_before,
        },
        model={
            "N": model.N,
            "C": model.C,
            "n_filters_scale": model.config.n_filters_scale,
            "head": manifest.head,
            "flops_per_pattern": flops,
            "gflop_per_pattern": flops / 1e9,
            "conv_calls": len(calls),
            "counted": "conv layers from the module shapes (2 x MACs); bias, element-wise "
            "ops and FFTs not counted",
        },
        ceiling_probe="",
        threads=choice.to_dict(),
    )


def _tuned_settings(
    options: BenchOptions, manifest: Manifest, choice: ThreadChoice, report: BenchReport
) -> tuple[SessionSettings, EagerMode, bool]:
    """ONNX Runtime's settings, eager's mode and whether the tuning chose torch's thread count:
    measured (``--tune``, recorded in ``report.tuning``), else the manifest's or the defaults.

    Raises:
        BusyMachineError: (exit 2) ``--save-tuning`` on a busy machine (before or after).
    """
    from bench.tuning import tune  # looked up at call time (a test wraps it)
    from export.signature import Signature
    from ptycho_torch.threads import cpu_kind, physical_cores

    session = SessionSettings.from_manifest(manifest) or SessionSettings(choice.threads)
    if not options.tune:
        return session, EagerMode(), False
    start = read_load()
    if options.records_tuning:  # refused before minutes of measuring, not after
        check_idle(start, None, options.save_tuning_anyway)
    # the same thread counts for both; on CUDA the CPU threads hardly matter: one count
    auto = choice.requested == "auto" and options.device != "cuda"
    counts = list(range(1, physical_cores() + 1)) if auto else [choice.threads]
    tuning = tune(
        options.artifacts / "model.onnx",
        manifest.weights_path(options.artifacts),
        Signature.from_dict(manifest.signature),
        read_feed(options.artifacts),
        options.device,
        counts,
        options.seconds,
        f"{cpu_kind()}, {physical_cores()} cores, load average {list(start.averages)}",
    )
    session = tuning.onnxruntime
    if options.records_tuning:
        session = settings_to_record(session, start, read_load(), options.save_tuning_anyway)
    report.tuning = tuning.to_dict()
    return session, tuning.eager, auto


def _time_layers(
    options: BenchOptions,
    report: BenchReport,
    calls: list[ConvShape],
    timer: BatchTimer,
) -> None:
    """The per-layer view: each distinct conv shape timed alone, at the artifacts' own batch."""
    from bench.flops import distinct_shapes
    from bench.layers import time_layers

    own_batch = timer.own_batch
    batches = options.batches or [own_batch]
    report.layers_batch = own_batch if own_batch in batches else batches[-1]
    log.info("bench: per-layer view at batch %d", report.layers_batch)
    timings = time_layers(
        distinct_shapes(calls),
        report.layers_batch,
        timer.probe,
        options.seconds,
        options.device,
        timer.session,
        timer.eager_mode.channels_last,
    )
    report.layers = [t.to_dict() for t in timings]


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"
