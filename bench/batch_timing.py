"""One batch size timed: every backend of the artifacts built for it, interleaved with the GEMM
probe, and each backend's achieved GFLOP/s as a fraction of the ceiling measured in the same
rounds (:mod:`bench.ceiling`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.ceiling import GemmProbe
from bench.eager_tuning import EagerMode
from bench.report import BatchResult, BenchRow
from export.manifest import Manifest
from export.session import SessionSettings
from export.signature import Signature
from parity.errors import EnvironmentUnavailable
from parity.runners import Runner
from ptycho_torch.threads import Samples, interleave

__all__ = ["BatchTimer", "read_feed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchTimer:
    """What every batch size is timed with: the artifacts, the probe and the kept settings."""

    artifacts: Path
    manifest: Manifest
    device: str
    probe: GemmProbe
    flops: int  # per pattern, of the model's convolutions
    session: SessionSettings  # ONNX Runtime's
    eager_mode: EagerMode
    seconds: float
    repeats: int
    warmup: int

    @property
    def own_batch(self) -> int:
        """The batch size the artifacts were built for."""
        return int(self.manifest.signature["inputs"][0]["shape"][0])

    def time(self, batch: int, workdir: Path) -> BatchResult:
        """Every backend at ``batch`` (artifacts built into ``workdir`` unless it is the
        artifacts' own batch), interleaved with the GEMM probe."""
        from bench.batches import artifacts_for_batch

        made = artifacts_for_batch(self.artifacts, self.manifest, batch, workdir)
        runners = self._runners(made.folder)
        eager, ort = runners[0], runners[-1]
        settings = {eager.name: self.eager_mode.describe(), ort.name: self.session.describe()}
        unavailable: list[BenchRow] = []
        with ExitStack() as stack:  # every activated runner is deactivated, whatever fails
            candidates = self._activate(stack, runners, read_feed(made.folder), unavailable, batch)
            log.info("bench: batch %d, %s, %.0f s", batch, ", ".join(candidates), self.seconds)
            samples = interleave(
                candidates, self.seconds, self.repeats, self.warmup, f"batch {batch}"
            )
            providers = {r.name: r.providers for r in runners}
        ceiling, rates = self.probe.ceiling(samples)
        eager_p50 = samples[eager.name].p50
        timed = [
            _row(
                name,
                batch,
                s,
                self.flops,
                ceiling,
                eager_p50,
                providers.get(name, []),
                settings.get(name, ""),
            )
            for name, s in samples.items()
            if name not in self.probe.runs
        ]
        return BatchResult(
            batch, str(made.folder), made.build_seconds, ceiling, timed + unavailable, rates
        )

    def _runners(self, folder: Path) -> list[Runner]:
        """Eager, TorchScript, ``.pt2`` and ONNX Runtime (last) on the artifacts in ``folder``."""
        from export.manifest import read_manifest
        from parity.runners import ExportedProgramRunner, OnnxRuntimeRunner, TorchScriptRunner

        device = self.device
        own = folder == self.artifacts
        signature = Signature.from_dict(
            self.manifest.signature if own else read_manifest(folder).signature
        )
        weights = self.manifest.weights_path(self.artifacts)
        return [
            self.eager_mode.runner(f"eager[{device}]", weights, signature, device),
            TorchScriptRunner(f"torchscript[{device}]", signature, device, folder / "model.ts"),
            ExportedProgramRunner(f"pt2[{device}]", signature, device, folder / "model.pt2"),
            OnnxRuntimeRunner(
                f"onnxruntime[{device}]", signature, device, folder / "model.onnx", self.session
            ),
        ]

    def _activate(
        self,
        stack: ExitStack,
        runners: list[Runner],
        feed: dict[str, np.ndarray],
        unavailable: list[BenchRow],
        batch: int,
    ) -> dict[str, Callable[[], object]]:
        """The probe's runs and each runner that came up, to time; ONNX Runtime's CUDA
        provider that did not come up is a row with its reason (the command exits 3)."""
        candidates: dict[str, Callable[[], object]] = dict(self.probe.runs)
        for r in runners:
            try:
                stack.enter_context(r)
            except EnvironmentUnavailable as exc:
                if not (self.device == "cuda" and r.kind == "onnxruntime"):
                    raise
                unavailable.append(BenchRow(r.name, batch, unavailable=str(exc)))
                continue
            candidates[r.name] = partial(r.infer, feed)
        return candidates


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


def read_feed(folder: Path) -> dict[str, np.ndarray]:
    """The artifacts' ``inputs.npz``."""
    from ptycho_torch.npz import read_npz

    return read_npz(folder / "inputs.npz", what="inputs")
