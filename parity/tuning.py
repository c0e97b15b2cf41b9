"""Tuning a host keeps: measure the settings that change speed, never results' meaning.

ONNX Runtime: intra-op thread counts (1 .. the physical cores, or the one given with
``--threads N``), graph optimisation levels and, with more than one thread, whether idle
threads spin (busy-wait; on a shared machine they take cores from other work), one session each, timed interleaved on the
artifact's own batch; the fastest is kept, with fewer threads winning ties within 5% (a thread
left free serves the next request). The choice becomes
:class:`export.session.SessionSettings`, which ``--save-tuning`` records in the manifest for
:class:`export.host.OnnxHost`. Eager PyTorch: ``torch.no_grad`` vs ``torch.inference_mode`` and
contiguous vs channels-last memory, kept for the bench's eager row (a PyTorch host applies them
in code; nothing to record).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.session import SessionSettings
from export.signature import Signature
from parity.bench_timing import interleave

__all__ = ["EagerMode", "EagerModel", "Trial", "Tuning", "tune"]

log = logging.getLogger(__name__)

LEVELS = ("basic", "extended", "all")
_TIE = 1.05  # fewer threads win unless the fastest is over 5% faster


@dataclass(frozen=True)
class EagerMode:
    """How eager PyTorch runs: the grad context and the memory format."""

    inference_mode: bool = True
    channels_last: bool = False

    def describe(self) -> str:
        grad = "inference_mode" if self.inference_mode else "no_grad"
        return f"{grad}, {'channels_last' if self.channels_last else 'contiguous'}"


class EagerModel:
    """The checkpoint's model wrapped with the signature check, run in an :class:`EagerMode`;
    ``feed dict -> output dict`` like a runner."""

    def __init__(self, weights: Path, signature: Signature, device: str, mode: EagerMode) -> None:
        from export.wrapper import wrap
        from ptycho_torch.checkpoint import load_model

        self.signature, self.device, self.mode = signature, device, mode
        self.module = wrap(load_model(weights), signature).to(device).eval()
        if mode.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def __call__(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = []
        for name in self.signature.input_names:
            t = torch.from_numpy(np.ascontiguousarray(feed[name])).to(self.device)
            if self.mode.channels_last and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            args.append(t)
        grad: AbstractContextManager[Any] = (
            torch.inference_mode() if self.mode.inference_mode else torch.no_grad()
        )
        with grad:
            out = self.module(*args)
        return {n: t.cpu().numpy() for n, t in zip(self.signature.output_names, out)}


@dataclass(frozen=True)
class Trial:
    """One measured setting: median ms per batch."""

    backend: str  # "onnxruntime" | "eager"
    setting: str
    p50_ms: float
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "setting": self.setting,
            "p50_ms": self.p50_ms,
            "chosen": self.chosen,
        }


@dataclass(frozen=True)
class Tuning:
    """What the measurements chose, and every trial."""

    onnxruntime: SessionSettings
    eager: EagerMode
    trials: list[Trial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnxruntime": self.onnxruntime.to_dict(),
            "onnxruntime_text": self.onnxruntime.describe(),
            "eager": self.eager.describe(),
            "trials": [t.to_dict() for t in self.trials],
        }


def tune(
    onnx_path: Path,
    weights: Path,
    signature: Signature,
    feed: Mapping[str, np.ndarray],
    device: str,
    threads: list[int],
    seconds: float,
    measured_on: str,
) -> Tuning:
    """Measure ONNX Runtime settings and eager modes on ``feed`` for ``seconds`` each.

    Args:
        threads: intra-op thread counts to try for ONNX Runtime.
        measured_on: the machine and its load, recorded with the choice.
    """
    ort_ms, settings = _tune_onnxruntime(onnx_path, feed, device, threads, seconds, measured_on)
    if ort_ms:
        best = min(ort_ms.values())
        chosen_key = min(
            (k for k, ms in ort_ms.items() if ms <= best * _TIE),
            key=lambda k: (settings[k].intra_op_threads or 0, ort_ms[k]),
        )
        chosen = settings[chosen_key]
    else:  # ONNX Runtime's CUDA provider did not come up: the bench reports it (exit 3)
        chosen_key, chosen = "", SessionSettings(threads[0], measured_on=measured_on)
    modes = [EagerMode(i, c) for i in (False, True) for c in (False, True)]
    eager_candidates = {
        m.describe(): _bind(EagerModel(weights, signature, device, m), feed) for m in modes
    }
    log.info("tuning: %d eager modes, %.0f s", len(modes), seconds)
    eager_times = interleave(eager_candidates, seconds, what="tuning eager")
    eager_ms = {k: 1e3 * v.p50 for k, v in eager_times.items()}
    chosen_mode = min(modes, key=lambda m: eager_ms[m.describe()])
    trials = [Trial("onnxruntime", k, ms, k == chosen_key) for k, ms in ort_ms.items()]
    trials += [Trial("eager", k, ms, k == chosen_mode.describe()) for k, ms in eager_ms.items()]
    tuning = Tuning(chosen, chosen_mode, trials)
    log.info(
        "tuning: ONNX Runtime %s; eager %s", tuning.onnxruntime.describe(), chosen_mode.describe()
    )
    return tuning


def _tune_onnxruntime(
    onnx_path: Path,
    feed: Mapping[str, np.ndarray],
    device: str,
    threads: list[int],
    seconds: float,
    measured_on: str,
) -> tuple[dict[str, float], dict[str, SessionSettings]]:
    """Median ms per setting (empty when ONNX Runtime cannot run on ``device``)."""
    from export.host import HostError, OnnxHost

    candidates: dict[str, Callable[[], object]] = {}
    settings: dict[str, SessionSettings] = {}
    searches = ["HEURISTIC", "EXHAUSTIVE"] if device == "cuda" else [None]
    for n in threads:
        spinning = [True, False] if n > 1 and device == "cpu" else [None]
        for level, search, spin in itertools.product(LEVELS, searches, spinning):
            s = SessionSettings(n, level, search, spin, measured_on)
            try:
                host = OnnxHost(onnx_path, device=device, session=s)
            except HostError as exc:
                if exc.exit_code != 3:
                    raise
                log.warning("tuning: ONNX Runtime not tuned: %s", exc)
                return {}, {}
            settings[s.describe()] = s
            candidates[s.describe()] = _bind(host.run, feed)
    log.info("tuning: %d ONNX Runtime settings, %.0f s", len(candidates), seconds)
    times = interleave(candidates, seconds, what="tuning onnxruntime")
    return {k: 1e3 * v.p50 for k, v in times.items()}, settings


def _bind(
    fn: Callable[[Mapping[str, np.ndarray]], object], feed: Mapping[str, np.ndarray]
) -> Callable[[], object]:
    return lambda: fn(feed)
