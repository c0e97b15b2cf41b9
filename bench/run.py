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
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.ceiling import GemmProbe
from bench.machine_load import MachineLoad, busy_note, check_idle, read_load
from bench.report import BatchResult, BenchReport, BenchRow
from bench.tuning import EagerMode
from export.manifest import Manifest
from export.session import SessionSettings
from parity.errors import EnvironmentUnavailable
from ptycho_torch.thread_option import parse_threads
from ptycho_torch.threads import Samples, interleave

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
    device: str = field(default="cpu", metadata={"help": "device", "choices": ("cpu", "cuda")})
    seconds: float = field(
        default=10.0,
        metadata={"help": "timed seconds per batch size (and per tuning step and layer view)"},
    )
    repeats: int = field(default=5, metadata={"help": "at least this many timed rounds"})
    warmup: int = field(default=2, metadata={"help": "untimed rounds per backend first"})
    threads: str = field(
        default="auto",
        metadata={
            "help": "CPU threads: auto (torch and ONNX Runtime: 1..cores tried by the tuning; "
            "torch: measured when --no-tune), N (both use N) or default (torch's own)"
        },
    )
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
    from bench.flops import conv_shapes, distinct_shapes
    from bench.layers import time_layers
    from bench.tuning import tune
    from export.manifest import read_manifest
    from export.session import save_session_settings
    from export.signature import Signature
    from parity.precision import apply_precision_policy
    from parity.runners import torch_device
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.threads import cpu_kind, physical_cores, set_threads

    apply_precision_policy()
    load_before = list(read_load().averages)
    manifest = read_manifest(options.artifacts)  # benchmark what was built, nothing else
    weights = manifest.weights_path(options.artifacts)
    signature = Signature.from_dict(manifest.signature)
    own_batch = signature.inputs[0].shape[0]
    batches = options.batches or [own_batch]
    choice = set_threads(options.threads)
    torch_device(options.device)  # EnvironmentUnavailable (exit 3) for a missing CUDA
    model = load_model(weights)
    calls = conv_shapes(model)
    flops = sum(c.flops for c in calls)
    machine = {
        "cpu": cpu_kind(),
        "physical_cores": physical_cores(),
        "device": _device_name(options.device),
        "load_before": load_before,
    }
    report = BenchReport(
        machine=machine,
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
    session = SessionSettings.from_manifest(manifest) or SessionSettings(choice.threads)
    eager_mode = EagerMode()
    torch_threads, tuned = choice.threads, False
    if options.tune:
        start = read_load()
        if options.records_tuning:  # refused before minutes of measuring, not after
            check_idle(start, None, options.save_tuning_anyway)
        # the same thread counts for both; on CUDA the CPU threads hardly matter: one count
        counts = (
            list(range(1, physical_cores() + 1))
            if choice.requested == "auto" and options.device != "cuda"
            else [choice.threads]
        )
        tuning = tune(
            options.artifacts / "model.onnx",
            weights,
            signature,
            _feed(options.artifacts),
            options.device,
            [1] if options.device == "cuda" else counts,
            options.seconds,
            f"{cpu_kind()}, {physical_cores()} cores, load average {list(start.averages)}",
            torch_threads=counts,
        )
        session, eager_mode = tuning.onnxruntime, tuning.eager
        if options.records_tuning:
            session = _busy_checked(session, start, read_load(), options.save_tuning_anyway)
        torch_threads = eager_mode.threads or choice.threads
        tuned = choice.requested == "auto" and options.device != "cuda"
        report.tuning = tuning.to_dict()
    if options.tune or choice.requested != "default":
        torch.set_num_threads(torch_threads)  # every torch backend timed from here on
    report.threads = _threads_record(choice.to_dict(), torch_threads, tuned)
    probe = gemm_probe(
        options.device, max(torch_threads, session.intra_op_threads or physical_cores())
    )
    report.ceiling_probe = probe.describe()
    with tempfile.TemporaryDirectory(prefix="ptychopinn-bench-") as workdir:
        for batch in batches:
            report.batches.append(
                _bench_batch(
                    options, manifest, batch, Path(workdir), probe, flops, session, eager_mode
                )
            )
    if options.layers:
        report.layers_batch = own_batch if own_batch in batches else batches[-1]
        log.info("bench: per-layer view at batch %d", report.layers_batch)
        timings = time_layers(
            distinct_shapes(calls),
            report.layers_batch,
            probe,
            options.seconds,
            options.device,
            session,
            eager_mode.channels_last,
        )
        report.layers = [t.to_dict() for t in timings]
    if options.records_tuning:
        save_session_settings(options.artifacts, session)
        report.saved_tuning = str(options.artifacts / "manifest.json")
        log.info("bench: recorded ONNX Runtime settings in %s", report.saved_tuning)
    machine["load_after"] = list(read_load().averages)
    return report


def _busy_checked(
    session: SessionSettings, start: MachineLoad, end: MachineLoad, anyway: bool
) -> SessionSettings:
    """The settings to record: refused (exit 2) if the machine was busy, unless ``anyway``,
    which notes the load in them (and warns)."""
    check_idle(start, end, anyway)
    note = busy_note(start, end)
    if not note:
        return session
    log.warning("bench: recording ONNX Runtime settings measured on a busy machine: %s", note)
    return replace(session, measured_while_busy=note)


def _threads_record(choice: dict[str, object], used: int, tuned: bool) -> dict[str, object]:
    """``--threads``' choice (:meth:`ptycho_torch.threads.ThreadChoice.to_dict`) with the torch
    thread count really used by every torch backend (``threads``) and where it came from."""
    record = dict(choice)
    if tuned:
        chosen_by = "tuning"
    elif choice["requested"] == "default":
        chosen_by = "torch's default"
    elif choice["requested"] == "auto":
        chosen_by = "measured at start"
    else:
        chosen_by = "given"
    if tuned:  # what --threads auto measured at start, before the tuning replaced it
        record["before_tuning"] = choice["threads"]
    record.update(threads=used, chosen_by=chosen_by)
    return record


def _bench_batch(
    options: BenchOptions,
    manifest: Manifest,
    batch: int,
    workdir: Path,
    probe: GemmProbe,
    flops: int,
    session: SessionSettings,
    eager_mode: EagerMode,
) -> BatchResult:
    """Every backend at ``batch``, interleaved with the GEMM probe."""
    from bench.batches import artifacts_for_batch
    from export.signature import Signature
    from parity.runners import ExportedProgramRunner, OnnxRuntimeRunner, TorchScriptRunner

    made = artifacts_for_batch(options.artifacts, manifest, batch, workdir)
    folder, device = made.folder, options.device
    signature = Signature.from_dict(_signature(folder, made.folder == options.artifacts, manifest))
    feed = _feed(folder)
    weights = manifest.weights_path(options.artifacts)
    ort = OnnxRuntimeRunner(
        f"onnxruntime[{device}]", signature, device, folder / "model.onnx", session
    )
    runners = [
        eager_mode.runner(f"eager[{device}]", weights, signature, device),
        TorchScriptRunner(f"torchscript[{device}]", signature, device, folder / "model.ts"),
        ExportedProgramRunner(f"pt2[{device}]", signature, device, folder / "model.pt2"),
        ort,
    ]
    rows: list[BenchRow] = []
    settings = {runners[0].name: eager_mode.describe(), ort.name: session.describe()}
    with ExitStack() as stack:  # every activated runner is deactivated, whatever fails
        candidates: dict[str, Callable[[], object]] = dict(probe.runs)
        for r in runners:
            try:
                stack.enter_context(r)
            except EnvironmentUnavailable as exc:
                if not (device == "cuda" and r.kind == "onnxruntime"):
                    raise
                rows.append(BenchRow(r.name, batch, unavailable=str(exc)))  # the CLI exits 3
                continue
            candidates[r.name] = partial(r.infer, feed)
        log.info("bench: batch %d, %s, %.0f s", batch, ", ".join(candidates), options.seconds)
        samples = interleave(
            candidates, options.seconds, options.repeats, options.warmup, f"batch {batch}"
        )
        providers = {r.name: r.providers for r in runners}
    ceiling, rates = probe.ceiling(samples)
    eager_p50 = samples[f"eager[{device}]"].p50
    timed = [
        _row(
            name,
            batch,
            s,
            flops,
            ceiling,
            eager_p50,
            providers.get(name, []),
            settings.get(name, ""),
        )
        for name, s in samples.items()
        if name not in probe.runs
    ]
    return BatchResult(batch, str(folder), made.build_seconds, ceiling, timed + rows, rates)


def _row(
    name: str,
    batch: int,
    s: Samples,
    flops: int,
    ceiling: float,
    eager_p50: float,
    providers: list[str],
    setting: str,
) -> BenchRow:
    gflops = flops * batch / s.p50 / 1e9
    return BenchRow(
        runner=name,
        batch=batch,
        providers=list(providers),
        setting=setting,
        rounds=len(s),
        p50_ms=1e3 * s.p50,
        p99_ms=1e3 * s.p99,
        patterns_per_s=batch / s.p50,
        gflops=gflops,
        fraction_of_ceiling=gflops / ceiling,
        speedup_vs_eager=eager_p50 / s.p50,
    )


def _feed(folder: Path) -> dict[str, np.ndarray]:
    from ptycho_torch.npz import read_npz

    return read_npz(folder / "inputs.npz", what="inputs")


def _signature(folder: Path, own: bool, manifest: Manifest) -> dict[str, object]:
    from export.manifest import read_manifest

    return manifest.signature if own else read_manifest(folder).signature


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"
