"""Where a training step spends its time: ``torch.profiler`` over marked steps.

:func:`label_regions` marks the network (encoder and both decoders) and the physics forward with
``record_function`` ranges for as long as it is entered; :class:`StepProfiler` records the
steps marked between :meth:`~StepProfiler.start` and :meth:`~StepProfiler.stop` (a training
loop of any kind: Lightning's, through :class:`ProfileWindow`, or the bench's own) and sorts
their events into the parts of a step (:func:`bench.step_parts.classify`).

The profiler itself adds a few microseconds per operator, so the figures are for finding where
the time goes, not for speeds: those come from :mod:`bench.train_step`'s unprofiled timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function

from bench.step_parts import NETWORK, PHYSICS, STEP, StepProfile, classify, combine

__all__ = ["ProfileWindow", "StepProfiler", "label_regions"]


@contextmanager
def label_regions(model: nn.Module) -> Iterator[None]:
    """Wrap a :class:`~ptycho_torch.model.PtychoPINN`'s ``predict`` (network) and
    ``predict_diffraction`` (physics) in ``record_function`` ranges while entered.

    The wrappers are instance attributes, removed on exit; the model computes the same.
    """
    wrapped = {"predict": NETWORK, "predict_diffraction": PHYSICS}
    originals = {name: getattr(model, name) for name in wrapped}
    for name, label in wrapped.items():
        setattr(model, name, _in_range(label, originals[name]))
    try:
        yield
    finally:
        for name in wrapped:
            delattr(model, name)


def _in_range(label: str, fn: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)

    return call


class StepProfiler:
    """``torch.profiler`` over marked steps.

    Between :meth:`start` and :meth:`stop`, each step is marked by :meth:`step_begin` and
    :meth:`step_end` (or ``with profiler.step():``); only what runs inside the marks is
    classified, so epoch ends (validation, checkpoints) are left out. Every ``chunk`` steps the
    events so far are classified and dropped (between two steps), so that memory stays bounded
    over hundreds of steps.
    """

    def __init__(self, chunk: int = 20) -> None:
        self._profiler: torch.profiler.profile | None = None
        self._open: record_function | None = None
        self._chunks: list[StepProfile] = []
        self._chunk, self._in_chunk = chunk, 0
        self.steps = 0

    def start(self) -> None:
        self._profiler = torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
        )
        self._profiler.__enter__()
        self._in_chunk = 0

    def step_begin(self) -> None:
        self.step_end()
        if self._in_chunk >= self._chunk:
            self._close_chunk()
            self.start()
        self._in_chunk += 1
        self._open = record_function(STEP)
        self._open.__enter__()

    def step_end(self) -> None:
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None
            self.steps += 1

    @contextmanager
    def step(self) -> Iterator[None]:
        self.step_begin()
        try:
            yield
        finally:
            self.step_end()

    def stop(self) -> StepProfile:
        """Stop profiling; the average marked step.

        Raises:
            ValueError: no step was marked.
        """
        self.step_end()
        self._close_chunk()
        return combine(self._chunks)

    def _close_chunk(self) -> None:
        assert self._profiler is not None, "start() first"
        self._profiler.__exit__(None, None, None)
        if self._in_chunk:
            self._chunks.append(classify(self._profiler.events()))
        self._profiler = None


class ProfileWindow:
    """A Lightning callback: profile the training steps of global steps ``[first, first + steps)``.

    Each step runs from one ``on_train_batch_start`` to the next (the next batch's loading
    included); an epoch's last step ends at its ``on_train_batch_end``. After the window,
    :attr:`profile` holds the :class:`StepProfile`. Built against ``lightning.Callback`` when
    made, so that importing this module needs no Lightning.
    """

    def __new__(cls, first: int, steps: int) -> Any:
        import lightning as L

        class _Window(L.Callback):
            def __init__(self) -> None:
                self.first, self.last = first, first + steps
                self.profiler = StepProfiler()
                self.profile: StepProfile | None = None
                self._regions = ExitStack()

            def on_train_batch_start(self, trainer: Any, module: Any, *args: Any) -> None:
                step = trainer.global_step
                if step == self.first:
                    self._regions.enter_context(label_regions(module.model))
                    self.profiler.start()
                if step == self.last and self.profile is None:
                    self._finish()
                if self.first <= step < self.last:
                    self.profiler.step_begin()

            def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
                batch_idx = args[-1]
                if batch_idx == trainer.num_training_batches - 1:
                    self.profiler.step_end()

            def on_train_end(self, trainer: Any, module: Any) -> None:
                if self.profile is None and self.profiler.steps:
                    self._finish()

            def _finish(self) -> None:
                self.profile = self.profiler.stop()
                self._regions.close()

        return _Window()
