"""Eager PyTorch's modes, and the tuning that picks one: ``torch.no_grad`` vs
``torch.inference_mode``, contiguous vs channels-last memory and torch's intra-op thread counts,
timed interleaved (each candidate sets ``torch.set_num_threads`` before it runs). The bench keeps
the mode for its eager row and the thread count for every torch backend; a PyTorch host applies
them in code (nothing to record).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from export.signature import Signature
from parity.runners import EagerRunner
from ptycho_torch.threads import at_threads, interleave

__all__ = ["EagerMode", "tune_eager"]

log = logging.getLogger(__name__)


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


def tune_eager(
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
