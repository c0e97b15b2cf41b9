"""ONNX Runtime's session settings, measured: intra-op thread counts, graph optimisation levels
and (with more than one thread) whether idle threads spin, or on CUDA cuDNN's convolution
algorithm search; then the kept settings as they are against IO binding and, on CUDA, IO binding
with a CUDA graph (:mod:`bench.tuning` puts the rounds together).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.report import Trial
from export.session import SessionSettings
from ptycho_torch.threads import interleave

__all__ = ["LEVELS", "WITHIN", "tune_binding", "tune_onnxruntime"]

log = logging.getLogger(__name__)

LEVELS = ("basic", "extended", "all")
WITHIN = 0.05  # fewer threads win unless the fastest is over 5% faster; a binding must beat it


def tune_onnxruntime(
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


def tune_binding(
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
    chosen_key = fastest if ms[fastest] * (1 + WITHIN) < ms[plain] else plain
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
