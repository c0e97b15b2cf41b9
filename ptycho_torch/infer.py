"""Inference: checkpoint + scan NPZ -> stitched complex object, images and quality metrics.

``python -m export infer --checkpoint CKPT --data NPZ --out DIR [--baseline]`` writes
``DIR/reconstruction.npz`` (complex64 ``object``, float32 ``amplitude``/``phase``/``weight``),
``DIR/amplitude.png``, ``DIR/phase.png`` and, when the NPZ has ``objectGuess``, ``DIR/metrics.json``.
Data go through :func:`ptycho_torch.scan.load_npz`, so a float64 NPZ reaches the network as
float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ptycho_torch.errors import DataError
from ptycho_torch.metrics import ReconstructionMetrics, compare_objects
from ptycho_torch.model import PtychoPINN
from ptycho_torch.prepare import group_scan_points, network_input, normalisation_factor
from ptycho_torch.recon_files import write_reconstruction
from ptycho_torch.scan import PtychoData
from ptycho_torch.stitch import StitchedObject, stitch_patches

__all__ = [
    "InferConfig",
    "Reconstruction",
    "evaluate",
    "predict_patches",
    "reconstruct",
    "untrained_like",
    "write_outputs",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferConfig:
    """Options of an inference run."""

    batch_size: int = field(default=64, metadata={"help": "scan points per forward pass"})

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"InferConfig.batch_size must be an int >= 1, got {self.batch_size!r}")


@dataclass(frozen=True)
class Reconstruction:
    """Predicted patches (one per scan point) and the stitched object."""

    patches: np.ndarray  # (n, N, N) complex64, patch i belongs to scan point i
    stitched: StitchedObject


def predict_patches(
    model: PtychoPINN, data: PtychoData, batch_size: int = InferConfig.batch_size
) -> np.ndarray:
    """Run ``model.predict`` over the scan in batches; returns complex64 ``(n, N, N)`` patches.

    With gridsize > 1 every scan point is predicted as channel 0 of its own group; patches
    from other channels are averaged in where they belong.
    """
    if data.N != model.N:
        raise DataError(f"data patterns are {data.N}x{data.N} but the model expects N={model.N}")
    groups = group_scan_points(data.xcoords, data.ycoords, model.config.gridsize, seed=0)
    # the original's data side: normalise over the groups, times the model's intensity scale
    factor = normalisation_factor(data.diffraction, groups.indices)
    scale = model.config.intensity_scale
    total = np.zeros((data.n, data.N, data.N), dtype=np.complex128)
    count = np.zeros(data.n, dtype=np.int64)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, data.n, batch_size):
            idx = groups.indices[start : start + batch_size]  # (b, C)
            x = torch.from_numpy(
                network_input(data.diffraction[idx], factor, scale)
            )  # (b, C, N, N)
            amplitude, phase = model.predict(x.to(device=device, dtype=torch.float32))
            obj = torch.polar(amplitude, phase).cpu().numpy()  # (b, out_channels, N, N)
            if obj.shape[1] != idx.shape[1]:  # object_big=False: one shared patch
                obj = np.broadcast_to(obj, (obj.shape[0], idx.shape[1], *obj.shape[2:]))
            np.add.at(total, idx.reshape(-1), obj.reshape(-1, data.N, data.N))
            np.add.at(count, idx.reshape(-1), 1)
    return (total / np.maximum(count, 1)[:, None, None]).astype(np.complex64)


def reconstruct(
    model: PtychoPINN, data: PtychoData, batch_size: int = InferConfig.batch_size
) -> Reconstruction:
    """Predict every scan point and stitch the patches into the object's frame."""
    patches = predict_patches(model, data, batch_size)
    shape = data.obj.shape if data.obj is not None else None
    stitched = stitch_patches(patches, data.xcoords, data.ycoords, shape=shape)
    return Reconstruction(patches=patches, stitched=stitched)


def evaluate(recon: Reconstruction, data: PtychoData) -> ReconstructionMetrics | None:
    """Metrics against ``objectGuess`` over the fully covered region; None without ground truth."""
    if data.obj is None:
        return None
    return compare_objects(recon.stitched.obj, data.obj, recon.stitched.weight)


def untrained_like(model: PtychoPINN, seed: int = 0) -> PtychoPINN:
    """A freshly initialised model with the same config, probe and intensity scale (baseline)."""
    torch.manual_seed(seed)
    fresh = PtychoPINN(model.config)
    with torch.no_grad():
        fresh.probe_re.copy_(model.probe_re)  # type: ignore[operator, arg-type]
        fresh.probe_im.copy_(model.probe_im)  # type: ignore[operator, arg-type]
        fresh.log_scale.copy_(model.log_scale)
    return fresh.eval()


def write_outputs(recon: Reconstruction, out: Path) -> list[Path]:
    """Write ``reconstruction.npz`` and amplitude/phase PNGs; returns the written paths."""
    return write_reconstruction(recon.stitched, out)
