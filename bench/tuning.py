"""Tuning a host keeps: measure the settings that change speed, never results' meaning.

ONNX Runtime: intra-op thread counts (1 .. the physical cores, or the one given with
``--threads N``), graph optimisation levels and, with more than one thread, whether idle
threads spin (busy-wait; on a shared machine they take cores from other work), one session each, timed interleaved on the
artifact's own batch; the fastest is kept, with fewer threads winning ties within 5% (a thread
left free serves the next request). On CUDA, cuDNN's convolution algorithm search replaces the
thread counts. A second round times the kept settings as they are against IO binding (buffers
allocated once on the device) and, on CUDA, IO binding with a CUDA graph; a binding is kept only
if it is over 5% faster, and one that cannot run (a CUDA graph needs every node on the CUDA
provider) is a trial with its reason, never an error. The choice becomes
:class:`export.session.SessionSettings`, which ``--save-tuning`` records in the manifest for
:class:`export.host.OnnxHost`. Eager PyTorch: ``torch.no_grad`` vs ``torch.inference_mode``,
contiguous vs channels-last memory and torch's intra-op thread counts (the same list as ONNX
Runtime's, so neither backend is compared at more threads than the other; each candidate sets
``torch.set_num_threads`` before it runs, and fewer threads win ties within 5% as above), timed
interleaved; the bench keeps the mode for its eager row and the thread count for every torch
backend (a PyTorch host applies them in code; nothing to record).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.session import SessionSettings
from export.signature import Signature
from parity.runners import EagerRunner
from ptycho_torch.threads import at_threads, fewest_threads, interleave

__all__ = ["EagerMode", "Trial", "Tuning", "tune"]

log = logging.getLogger(__name__)

LEVELS = ("basic", "extended", "all")
_WITHIN = 0.05  # fewer threads win unless the fastest is over 5% faster; a binding must beat it


@dataclass(frozen=True)
class EagerMode:
    """How eager PyTorch runs: the grad context, the memory format and torch's intra-op thread
    count (``None``: whatever torch has; the count is process-wide, so whoever runs the model
    applies it with ``torch.set_num_threads``, not the runner)."""

    inference_mode: bool = True
    channels_last: bool = False
    threads: int | None = None

    def runner(self, name: str, weights: Path, signature: Signature, device: str) -> EagerRunner:
        """The checkpoint's model as a runner in this mode (activate it before ``infer``)."""
        return EagerRunner(
            name,
            signature,
            device,
            weights,
            inference_mode=self.inference_mode,
            channels_last=self.channels_last,
        )

    def describe(self) -> str:
        grad = "inference_mode" if self.inference_mode else "no_grad"
        text = f"{grad}, {'channels_last' if self.channels_last else 'contiguous'}"
        if self.threads is not None:
            text += f", {self.threads} thread{'' if self.threads == 1 else 's'}"
        return text


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
            "eager_threads": self.eager.threads,
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
    torch_threads: list[int] | None = None,
) -> Tuning:
    """Measure ONNX Runtime settings and eager modes on ``feed`` for ``seconds`` each.

    torch's thread count is as it was before when this returns (the caller applies
    ``Tuning.eager.threads``).

    Args:
        threads: intra-op thread counts to try for ONNX Runtime.
        measured_on: the machine and its load, recorded with the choice.
        torch_threads: torch intra-op thread counts to try for eager PyTorch (default: torch's
            current count only).
    """
    ort_ms, settings = _tune_onnxruntime(onnx_path, feed, device, threads, seconds, measured_on)
    binding_trials: list[Trial] = []
    if ort_ms:
        chosen_key = fewest_threads(ort_ms, lambda k: settings[k].intra_op_threads, _WITHIN)
        chosen, binding_trials = _tune_binding(
            onnx_path, feed, device, settings[chosen_key], seconds
        )
    else:  # ONNX Runtime's CUDA provider did not come up: the bench reports it (exit 3)
        chosen_key, chosen = "", SessionSettings(threads[0], measured_on=measured_on)
    eager_ms, modes = _tune_eager(weights, signature, feed, device, torch_threads, seconds)
    chosen_mode = modes[fewest_threads(eager_ms, lambda k: modes[k].threads, _WITHIN)]
    trials = [
        Trial(
            "onnxruntime",
            k,
            ms,
            k == chosen_key and not binding_trials,
            threads=settings[k].intra_op_threads,
        )
        for k, ms in ort_ms.items()
    ]
    trials += binding_trials
    trials += [
        Trial("eager", k, ms, k == chosen_mode.describe(), threads=modes[k].threads)
        for k, ms in eager_ms.items()
    ]
    tuning = Tuning(chosen, chosen_mode, trials)
    log.info(
        "tuning: ONNX Runtime %s; eager %s", tuning.onnxruntime.describe(), chosen_mode.describe()
    )
    return tuning


def _tune_eager(
    weights: Path,
    signature: Signature,
    feed: Mapping[str, np.ndarray],
    device: str,
    torch_threads: list[int] | None,
    seconds: float,
) -> tuple[dict[str, float], dict[str, EagerMode]]:
    """Median ms per eager mode (grad context x memory format x torch thread count), timed
    interleaved; each candidate sets torch's thread count before it runs, and the count it found
    is restored after."""
    previous = torch.get_num_threads()
    counts = list(torch_threads or [previous])
    candidates: dict[str, Callable[[], object]] = {}
    modes: dict[str, EagerMode] = {}
    with ExitStack() as stack:  # every model is freed after the timing, whatever fails
        for inference_mode, channels_last in itertools.product((False, True), (False, True)):
            kind = EagerMode(inference_mode, channels_last)
            # one model per grad context and memory format, shared by the counts
            model = stack.enter_context(kind.runner(kind.describe(), weights, signature, device))
            for n in counts:
                mode = replace(kind, threads=n)
                modes[mode.describe()] = mode
                candidates[mode.describe()] = at_threads(n, model.infer, feed)
        log.info("tuning: %d eager modes (threads %s), %.0f s", len(candidates), counts, seconds)
        try:
            times = interleave(candidates, seconds, what="tuning eager")
        finally:
            torch.set_num_threads(previous)
    return {k: 1e3 * v.p50 for k, v in times.items()}, modes


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
            s = SessionSettings(
                intra_op_threads=n,
                graph_optimization=level,
                cudnn_conv_algo_search=search,
                allow_spinning=spin,
                measured_on=measured_on,
            )
            try:
                host = OnnxHost(onnx_path, device=device, session=s)
            except HostError as exc:
                if exc.exit_code != 3:
                    raise
                log.warning("tuning: ONNX Runtime not tuned: %s", exc)
                return {}, {}
            settings[s.describe()] = s
            candidates[s.describe()] = partial(host.run, feed)
    log.info("tuning: %d ONNX Runtime settings, %.0f s", len(candidates), seconds)
    times = interleave(candidates, seconds, what="tuning onnxruntime")
    return {k: 1e3 * v.p50 for k, v in times.items()}, settings


def _tune_binding(
    onnx_path: Path,
    feed: Mapping[str, np.ndarray],
    device: str,
    kept: SessionSettings,
    seconds: float,
) -> tuple[SessionSettings, list[Trial]]:
    """Time ``kept`` plain, with IO binding and (CUDA) with IO binding and a CUDA graph.

    Returns the faster (a binding only when over 5% faster than the plain run) and the trials.
    """
    from export.host import OnnxHost

    variants = [kept, replace(kept, io_binding=True)]
    if device == "cuda":
        variants.append(replace(kept, io_binding=True, cuda_graph=True))
    candidates: dict[str, Callable[[], object]] = {}
    by_key: dict[str, SessionSettings] = {}
    failed: list[Trial] = []
    for s in variants:
        try:
            host = OnnxHost(onnx_path, device=device, session=s)
            host.run(feed)  # a CUDA graph is captured here: failures show now, not mid-timing
        except Exception as exc:  # noqa: BLE001 - ORT's run raises its own untyped errors
            if not s.cuda_graph:
                raise
            log.warning("tuning: %s cannot run: %s", s.describe(), exc)
            failed.append(
                Trial(
                    "onnxruntime",
                    s.describe(),
                    None,
                    stage="binding",
                    note=str(exc),
                    threads=s.intra_op_threads,
                )
            )
            continue
        by_key[s.describe()] = s
        candidates[s.describe()] = partial(host.run, feed)
    log.info("tuning: %d ONNX Runtime bindings, %.0f s", len(candidates), seconds)
    times = interleave(candidates, seconds, what="tuning binding")
    ms = {k: 1e3 * v.p50 for k, v in times.items()}
    plain = kept.describe()
    fastest = min(ms, key=ms.__getitem__)
    chosen_key = fastest if ms[fastest] * (1 + _WITHIN) < ms[plain] else plain
    trials = [
        Trial(
            "onnxruntime",
            k,
            v,
            k == chosen_key,
            stage="binding",
            threads=by_key[k].intra_op_threads,
        )
        for k, v in ms.items()
    ]
    return by_key[chosen_key], trials + failed
