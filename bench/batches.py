"""Artifacts for batch sizes other than the built one, made on the fly for the bench.

The signature is fixed per artifact (``B`` included), so each other batch size is a build of
its own, from the folder's own weights and inputs, into a temporary folder, by the same
:func:`export.build.build` a user runs (every export checked and loaded back against eager).
The inputs are the folder's parity batch repeated (or cut) to ``B`` samples.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.manifest import Manifest
from ptycho_torch.npz import read_npz

__all__ = ["BatchArtifacts", "artifacts_for_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchArtifacts:
    """The folder that holds artifacts for ``batch`` and what making it cost (0: it was given)."""

    batch: int
    folder: Path
    build_seconds: float = 0.0


def artifacts_for_batch(
    artifacts: Path, manifest: Manifest, batch: int, workdir: Path
) -> BatchArtifacts:
    """``artifacts`` itself when it was built for ``batch``, else a build into ``workdir``."""
    from export.build import build
    from export.options import BuildOptions

    built_batch = int(manifest.signature["inputs"][0]["shape"][0])
    if batch == built_batch:
        return BatchArtifacts(batch, artifacts)
    start = time.perf_counter()
    feed = {k: _resize(v, batch) for k, v in read_npz(artifacts / "inputs.npz", "inputs").items()}
    inputs = workdir / f"inputs-b{batch}.npz"
    np.savez(inputs, **feed)  # type: ignore[arg-type]
    log.info("bench: building batch %d artifacts into %s", batch, workdir)
    result = build(
        BuildOptions(
            checkpoint=manifest.weights_path(artifacts),
            inputs=inputs,
            out=workdir / f"b{batch}",
            batch=batch,
            head=manifest.head,
            opset=manifest.opset or BuildOptions.opset,
            reference="none",
            keep=0,
        )
    )
    return BatchArtifacts(batch, result.out, time.perf_counter() - start)


def _resize(array: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` samples: the array's own, repeated in order as often as needed."""
    index = np.arange(batch) % array.shape[0]
    return np.ascontiguousarray(array[index])
