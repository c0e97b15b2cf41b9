"""The child side of :mod:`export.ptychodus.library`: runs in the process Ptychodus spawns for
each reconstruction (``module:function`` entry, called with the payload and the result queue)."""

from __future__ import annotations

import pickle
from multiprocessing.queues import Queue
from typing import Any

from ptychodus.model.processing.subprocess_reconstructor import TAG_OUTPUT

from export.ptychodus.library import ReconstructPayload
from export.ptychodus.reconstructor import OnnxReconstructor

__all__ = ["run_reconstruct"]


def run_reconstruct(payload: ReconstructPayload, queue: Queue[Any]) -> None:
    """Verify the artifacts on the payload's device, reconstruct, and put each
    ``ReconstructOutput`` on ``queue`` tagged as Ptychodus's adapter expects."""
    reconstructor = OnnxReconstructor(device=payload.device)
    reconstructor.load_model_from_file(payload.artifacts)
    for output in reconstructor.reconstruct(payload.reconstruct_input):
        queue.put((TAG_OUTPUT, pickle.dumps(output)))
