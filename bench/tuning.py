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

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.eager_tuning import EagerMode, tune_eager
from bench.onnxruntime_tuning import WITHIN, tune_binding, tune_onnxruntime
from bench.report import Trial
from export.session import SessionSettings
from export.signature import Signature
from ptycho_torch.threads import fewest_threads

__all__ = ["Tuning", "tune"]

log = logging.getLogger(__name__)


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
) -> Tuning:
    """Measure ONNX Runtime settings and eager modes on ``feed`` for ``seconds`` each.

    torch's thread count is as it was before when this returns (the caller applies
    ``Tuning.eager.threads``).

    Args:
        threads: intra-op thread counts to try, for ONNX Runtime and for eager PyTorch alike;
            on CUDA, ONNX Runtime tries one thread (cuDNN's algorithm search replaces the
            counts).
        measured_on: the machine and its load, recorded with the choice.
    """
    ort_threads = [1] if device == "cuda" else threads
    ort_ms, settings = tune_onnxruntime(onnx_path, feed, device, ort_threads, seconds, measured_on)
    binding_trials: list[Trial] = []
    if ort_ms:
        chosen_key = fewest_threads(ort_ms, lambda k: settings[k].intra_op_threads, WITHIN)
        chosen, binding_trials = tune_binding(
            onnx_path, feed, device, settings[chosen_key], seconds
        )
    else:  # ONNX Runtime's CUDA provider did not come up: the bench reports it (exit 3)
        chosen_key, chosen = "", SessionSettings(ort_threads[0], measured_on=measured_on)
    eager_ms, modes = tune_eager(weights, signature, feed, device, threads, seconds)
    chosen_mode = modes[fewest_threads(eager_ms, lambda k: modes[k].threads, WITHIN)]
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
