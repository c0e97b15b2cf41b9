"""Reconstruction quality against a ground-truth object, over the scanned region.

Ptychography fixes the object only up to a global phase (and, with an estimated intensity
scale, a global amplitude factor), so amplitude is compared after a least-squares scale fit and
phase after removing the weighted mean phase offset.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ReconstructionMetrics", "compare_objects"]


@dataclass(frozen=True)
class ReconstructionMetrics:
    """Quality figures of a stitched object (higher correlation/PSNR, lower RMS is better)."""

    amplitude_correlation: float  # Pearson r of amplitudes over the scanned region
    amplitude_psnr_db: float  # PSNR of the scale-fitted amplitude, peak = max true amplitude
    phase_rms_rad: float  # RMS of the wrapped phase error after removing the global offset
    phase_correlation: float  # Pearson r of offset-corrected phases
    pixels: int  # pixels in the evaluated (fully covered) region

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"amplitude r={self.amplitude_correlation:.3f} "
            f"PSNR={self.amplitude_psnr_db:.2f} dB | phase RMS={self.phase_rms_rad:.3f} rad "
            f"r={self.phase_correlation:.3f} | {self.pixels} px"
        )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def compare_objects(
    reconstruction: np.ndarray, truth: np.ndarray, weight: np.ndarray, min_weight: float = 0.99
) -> ReconstructionMetrics:
    """Compare over pixels whose stitching weight is at least ``min_weight`` (fully covered).

    Args:
        reconstruction: complex ``(H, W)`` stitched object.
        truth: complex ground truth, at least ``(H, W)`` (cropped to the reconstruction).
        weight: ``(H, W)`` stitching weight of the reconstruction.
    """
    h, w = (
        min(reconstruction.shape[0], truth.shape[0]),
        min(reconstruction.shape[1], truth.shape[1]),
    )
    region = weight[:h, :w] >= min_weight
    if not region.any():
        raise ValueError("no fully covered pixels to compare")
    rec = reconstruction[:h, :w][region].astype(np.complex128)
    ref = truth[:h, :w][region].astype(np.complex128)
    amp_rec, amp_ref = np.abs(rec), np.abs(ref)
    scale = float((amp_rec * amp_ref).sum() / max(float((amp_rec**2).sum()), 1e-30))
    mse = float(np.mean((scale * amp_rec - amp_ref) ** 2))
    psnr = 10 * math.log10(float(amp_ref.max()) ** 2 / mse) if mse > 0 else math.inf
    offset = np.angle(np.sum(rec * np.conj(ref)))  # global phase, amplitude-weighted
    error = np.angle(rec * np.conj(ref) * np.exp(-1j * offset))  # wrapped to (-pi, pi]
    return ReconstructionMetrics(
        amplitude_correlation=_pearson(amp_rec, amp_ref),
        amplitude_psnr_db=psnr,
        phase_rms_rad=float(np.sqrt(np.mean(error**2))),
        phase_correlation=_pearson(np.angle(rec * np.exp(-1j * offset)), np.angle(ref)),
        pixels=int(region.sum()),
    )
