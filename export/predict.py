"""A whole scan through the exported ONNX model, torch-free: scan NPZ in, stitched object out.

:class:`Predictor` opens an artifacts folder through the one manifest reader (every file's
sha256: exit 4), starts ONNX Runtime with provider truth (:class:`export.host.OnnxHost`:
requested CUDA that did not come up is exit 3, never a silent CPU run), checks that
``model.onnx`` is what the manifest describes, and reconstructs scans of any length through the
artifact's fixed batch ``B``. The network input is prepared exactly as
``python -m export infer`` prepares it, by the same functions (:mod:`ptycho_torch.scan`):
the same grouping (``gridsize``, seed 0), the original's normalisation over every group member,
times the model's ``intensity_scale``. The patches are stitched by the same code
(:class:`ptycho_torch.stitch.StitchAccumulator`), batch by batch.

**Memory is bounded by a few batches, not by the scan's length.** The scan is read with
:class:`ptycho_torch.scan_reader.ScanReader`, never whole, in two passes: one for the counts per pattern
that the normalisation needs (and the NaN/Inf/negative check), then ``B x C`` patterns per batch.
Held at once: one batch (its patterns, network input, outputs and complex patches: about
``36 * B * C * N**2`` bytes, 1.2 MB for B=8, C=1, N=64), the object (about 60 bytes per object
pixel at the peak: complex128 sums and float64 weights as
:func:`ptycho_torch.stitch.stitch_patches` holds them, then the complex64 result) and about
``40 + 16 * C`` bytes per scan point (coordinates, counts, group indices and positions). The
patterns themselves (``4 * n * N**2`` bytes) are never all in memory. Measured
(``scripts/bench_predict.py``, demo model): 500 and 5,000 patterns over the same object peak at
the same 126 MiB RSS.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.tolerances import Device
from export.errors import ArtifactsChangedError, ManifestError
from export.fixed_batch import run_in_fixed_batches
from export.host import DEVICES, OnnxHost
from export.manifest import read_manifest
from export.session import SessionSettings
from export.signature import AMPLITUDE, PHASE, Signature
from ptycho_torch.config import ModelConfig
from ptycho_torch.errors import DataError
from ptycho_torch.prepare import factor_from_counts, group_scan_points, network_input
from ptycho_torch.stitch import StitchAccumulator, StitchedObject, object_shape

__all__ = [
    "BatchRunner",
    "PredictOptions",
    "Prediction",
    "PredictionStats",
    "Predictor",
    "Progress",
    "ScanSource",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (patterns done, patterns in all)


class ScanSource(Protocol):
    """What :meth:`Predictor.predict` reads of a scan: :class:`ptycho_torch.scan_reader.ScanReader`
    (an NPZ file), or a scan already in memory (:class:`export.ptychodus.adapter.PatternScan`)."""

    path: Any  # what the scan is, for messages
    n: int
    N: int
    xcoords: np.ndarray
    ycoords: np.ndarray
    object_shape: tuple[int, int] | None

    def pattern_counts(self) -> np.ndarray: ...

    def take(self, indices: np.ndarray) -> np.ndarray: ...


class BatchRunner(Protocol):
    """What :class:`Predictor` runs the network with, on exactly the artifact's batch:
    :class:`export.host.OnnxHost` (this process), or a served model
    (:class:`export.serving.client.TritonRunner`, the same requests over HTTP or gRPC)."""

    signature: Signature
    device: str  # for the summary line: ``cpu``, ``cuda``, ``triton``
    providers: list[str]  # what runs it: ONNX Runtime's providers, or the server's URL

    @property
    def io_bound(self) -> bool: ...

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class PredictOptions:
    """How ``predict`` runs the model."""

    device: Device = field(
        default="cpu", metadata={"help": "ONNX Runtime device", "choices": DEVICES}
    )
    progress_every: float = field(
        default=2.0,
        metadata={"help": "seconds between progress lines on stderr (0: none)"},
    )

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"PredictOptions.device must be one of {DEVICES}, got {self.device!r}")
        if not self.progress_every >= 0:
            raise ValueError(
                f"PredictOptions.progress_every must be >= 0, got {self.progress_every!r}"
            )


@dataclass(frozen=True)
class PredictionStats:
    """What a prediction did: the summary line and ``prediction.json``."""

    patterns: int
    batches: int
    batch: int
    device: str
    providers: list[str]
    io_binding: bool
    seconds: float

    @property
    def patterns_per_s(self) -> float:
        return self.patterns / self.seconds if self.seconds > 0 else math.inf

    def summary(self) -> str:
        """``predicted 500 patterns in 63 batches of 8 on cpu (providers [...]): 2.9 s, 172 patterns/s``."""
        return (
            f"predicted {self.patterns} patterns in {self.batches} batches of {self.batch} on "
            f"{self.device} (providers {self.providers}"
            f"{', IO binding' if self.io_binding else ''}): {self.seconds:.1f} s, "
            f"{self.patterns_per_s:.0f} patterns/s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "patterns_per_s": self.patterns_per_s}


@dataclass(frozen=True)
class Prediction:
    """The stitched object of a scan and how it was made."""

    stitched: StitchedObject
    stats: PredictionStats


class Predictor:
    """Reconstruct scans with the ONNX model of an artifacts folder.

    Args:
        artifacts: folder written by ``python -m export build``.
        device: ``cpu`` or ``cuda`` (ONNX Runtime's CUDA provider; exit 3 if it does not start).
        runner: run the network there instead of in an ONNX Runtime session of this process
            (a served model); its signature must be the artifacts'.

    Raises:
        ManifestError: (exit 2) no readable manifest, or a model config that does not validate.
        ArtifactsChangedError: (exit 4) a file changed or missing, the manifest does not
            describe ``model.onnx``, or ``runner`` runs a model of another signature.
        HostError: (exit 3) CUDA requested but not running; (exit 2) ONNX Runtime cannot load.
    """

    def __init__(
        self, artifacts: str | Path, device: str = "cpu", runner: BatchRunner | None = None
    ) -> None:
        self.directory = Path(artifacts)
        self.manifest = read_manifest(self.directory)
        self.host: BatchRunner
        if runner is None:
            host = OnnxHost(  # with the session settings the manifest records, if any
                self.directory / "model.onnx",
                device=device,
                session=SessionSettings.from_manifest(self.manifest),
            )
            host.check_manifest(self.manifest)
            if device == "cuda" and "CUDAExecutionProvider" in host.providers:
                host.bind_io()  # one copy each way per batch, no allocation per run
            self.host = host
        else:
            described = Signature.from_dict(self.manifest.signature)
            if runner.signature != described:
                raise ArtifactsChangedError(
                    f"{runner.providers} runs a model of another signature than the artifacts "
                    f"in {self.directory} ({runner.signature.input_names} -> "
                    f"{runner.signature.output_names}, not {described.input_names} -> "
                    f"{described.output_names}): pass the artifacts it serves"
                )
            self.host = runner
        try:
            self.config = ModelConfig.from_dict(dict(self.manifest.model_config))
        except (TypeError, ValueError) as exc:
            raise ManifestError(
                f"{self.directory}/manifest.json: model_config does not validate: {exc}"
            ) from None
        spec = self.host.signature.inputs[0]  # diffraction (B, C, N, N)
        self.batch, self.channels, self.N = spec.shape[0], spec.shape[1], spec.shape[-1]

    def predict(self, scan: ScanSource, progress: Progress | None = None) -> Prediction:
        """Reconstruct ``scan``: every pattern predicted once per group it belongs to, the
        patches averaged per scan point and stitched (``python -m export infer``'s
        semantics), in batches of the artifact's ``B`` (the last one padded, padding dropped).

        Raises:
            DataError: (exit 2) a pattern size other than the artifact's N, or NaN, Inf or
                negative diffraction (naming the pattern).
        """
        if scan.N != self.N:
            raise DataError(
                f"scan {scan.path} holds {scan.N}x{scan.N} patterns (N={scan.N}) but the artifacts "
                f"in {self.directory} were built for N={self.N}: reconstruct it with a model "
                f"exported for N={scan.N}, or crop/bin the patterns to {self.N}x{self.N}"
            )
        start_time = time.perf_counter()
        groups = group_scan_points(scan.xcoords, scan.ycoords, self.config.gridsize, seed=0)
        factor = factor_from_counts(scan.pattern_counts(), self.N, groups.indices)
        shape = scan.object_shape or object_shape(scan.xcoords, scan.ycoords, self.N)
        stitcher = StitchAccumulator(shape, self.N)
        stitcher.add_weights(scan.xcoords, scan.ycoords)
        times = np.bincount(groups.indices.reshape(-1), minlength=scan.n)  # predictions per point
        averaged = bool(np.any(times > 1))
        samples, batches = len(groups.indices), 0
        for start, patches in self._patches(scan, groups.indices, groups.positions, factor):
            points = groups.indices[start : start + len(patches)].reshape(-1)  # (b*C,)
            flat = patches.reshape(-1, self.N, self.N)
            scale = 1.0 / times[points] if averaged else None
            stitcher.add_patches(flat, scan.xcoords[points], scan.ycoords[points], scale)
            batches += 1
            if progress is not None:
                progress(min(start + self.batch, samples), samples)
        stats = PredictionStats(
            patterns=scan.n,
            batches=batches,
            batch=self.batch,
            device=self.host.device,
            providers=self.host.providers,
            io_binding=self.host.io_bound,
            seconds=time.perf_counter() - start_time,
        )
        return Prediction(stitcher.result(), stats)

    def _patches(
        self, scan: ScanSource, indices: np.ndarray, positions: np.ndarray, factor: float
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first sample, complex64 (b, C, N, N) patches)`` per batch of samples."""
        scale = self.config.intensity_scale
        for start in range(0, len(indices), self.batch):
            idx = indices[start : start + self.batch]  # (b, C)
            feed = {"diffraction": network_input(scan.take(idx), factor, scale)}  # (b, C, N, N)
            if "positions" in self.host.signature.input_names:
                feed["positions"] = positions[start : start + self.batch]  # (b, C, 2)
            out = self.run_batch(feed)
            amplitude, phase = out[AMPLITUDE], out[PHASE]  # (b, C_out, N, N)
            patches: np.ndarray = np.empty(amplitude.shape, np.complex64)
            patches.real = amplitude * np.cos(phase)  # torch.polar, in float32
            patches.imag = amplitude * np.sin(phase)
            if patches.shape[1] != idx.shape[1]:  # object_big=False: one patch for the group
                patches = np.broadcast_to(patches, (len(idx), idx.shape[1], self.N, self.N))
            yield start, patches

    def run_batch(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for ``b <= B`` samples: padded to ``B`` (repeating the last sample), checked
        against the signature, run, and cut back to ``b``
        (:func:`export.fixed_batch.run_in_fixed_batches`, what the served model does too)."""
        return run_in_fixed_batches(self.host.run, feed, self.batch)
