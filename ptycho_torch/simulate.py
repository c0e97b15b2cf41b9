"""Deterministic simulated ptychography scans that follow the NPZ data contract.

The object is an extended complex field (smooth Gaussian random field plus random lines, in
amplitude and in phase); the probe is a circular aperture or a Gaussian, both with a defocus
(quadratic) phase that breaks the twin-image symmetry. Patches are cut out at jittered grid
positions (bilinear) and the diffraction amplitude is
``sqrt(Poisson(photons * fftshift(|FFT2(probe * patch)|^2 / N^2) / mean_total))``, the convention
of :func:`ptycho_torch.physics.diffraction_amplitude` scaled to ``photons`` counts per pattern.

Coordinates: ``patch[r, c] = object(y - N/2 + r, x - N/2 + c)`` with ``(x, y)`` the patch centre
in object pixels (``xcoords``, ``ycoords``).

Run ``python -m export simulate --out scan.npz`` to write a file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.scan import PtychoData

__all__ = [
    "SimulationConfig",
    "extract_object_patches",
    "make_object",
    "make_probe",
    "simulate_scan",
    "write_npz",
]

logger = logging.getLogger(__name__)

PROBES = ("aperture", "gaussian")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; every random choice derives from ``seed``."""

    seed: int = field(default=0, metadata={"help": "seeds object, scan jitter and Poisson noise"})
    n_images: int = field(
        default=1024, metadata={"help": "scan points (a square grid, cut to this count)"}
    )
    N: int = field(default=64, metadata={"help": "patch size (64, 128, 256 for the model)"})
    photons: float = field(default=1e6, metadata={"help": "mean counts per pattern"})
    object_size: int | None = field(
        default=None,
        metadata={"help": "object side M in pixels (default: just large enough for the scan)"},
    )
    probe: str = field(
        default="aperture", metadata={"help": "probe: disc or Gaussian", "choices": PROBES}
    )
    dtype: str = field(
        default="float32",
        metadata={
            "help": "float64 writes float64/complex128 (loader regression input)",
            "choices": DTYPES,
        },
    )

    def __post_init__(self) -> None:
        if self.n_images < 1:
            raise ValueError(f"SimulationConfig.n_images must be >= 1, got {self.n_images}")
        if self.N < 8 or self.N % 2:
            raise ValueError(f"SimulationConfig.N must be an even number >= 8, got {self.N}")
        if not self.photons > 0:
            raise ValueError(f"SimulationConfig.photons must be > 0, got {self.photons}")
        if self.probe not in PROBES:
            raise ValueError(f"SimulationConfig.probe must be one of {PROBES}, got {self.probe!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"SimulationConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.object_size is not None and self.object_size < self.N + 4:
            raise ValueError(
                f"SimulationConfig.object_size must be >= N + 4 = {self.N + 4}, "
                f"got {self.object_size}"
            )

    @property
    def grid_side(self) -> int:
        return math.ceil(math.sqrt(self.n_images))

    @property
    def step(self) -> float:
        """Scan step in pixels: N/4 (half the aperture diameter) unless object_size forces it."""
        if self.object_size is None or self.grid_side == 1:
            return self.N / 4
        return (self.object_size - self.N - 2 * self._margin) / (self.grid_side - 1)

    @property
    def _margin(self) -> int:
        return self.N // 16 + 2  # room for jitter and bilinear interpolation

    @property
    def M(self) -> int:
        if self.object_size is not None:
            return self.object_size
        return int(math.ceil((self.grid_side - 1) * self.N / 4)) + self.N + 2 * self._margin


def _smooth_field(rng: np.random.Generator, m: int, length: float) -> np.ndarray:
    """Gaussian random field with correlation length ``length`` pixels, scaled to [0, 1]."""
    noise = rng.standard_normal((m, m))
    k = np.fft.fftfreq(m)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    field = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (math.pi * length) ** 2 * k2)).real
    field -= field.min()
    return field / max(field.max(), 1e-12)


def _lines(rng: np.random.Generator, m: int, count: int) -> np.ndarray:
    """Random anti-aliased line segments, values in [0, 1]."""
    image = np.zeros((m, m))
    for _ in range(count):
        start = rng.uniform(0, m, 2)
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(0.1, 0.5) * m
        t = np.linspace(0.0, length, int(length * 2) + 2)
        ys = np.clip((start[0] + t * math.sin(angle)).astype(int), 0, m - 1)
        xs = np.clip((start[1] + t * math.cos(angle)).astype(int), 0, m - 1)
        image[ys, xs] = rng.uniform(0.5, 1.0)
    k = np.fft.fftfreq(m)
    blur = np.exp(-2 * (math.pi * 0.8) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    image = np.fft.ifft2(np.fft.fft2(image) * blur).real
    return np.clip(image / max(image.max(), 1e-12), 0.0, 1.0)


def make_object(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    """Extended complex object: amplitude in [0.05, 1], phase in [-2.5, 2.5] rad.

    Smooth Gaussian random fields (correlation length N/10) plus independent random lines in
    amplitude and phase, with enough contrast that single diffraction patterns differ clearly.
    """
    count = max(4, (m * m) // (n * n) * 3)

    def standardised(length: float) -> np.ndarray:
        field = _smooth_field(rng, m, length)
        return (field - field.mean()) / max(float(field.std()), 1e-12)

    amp = np.clip(0.55 + 0.25 * standardised(n / 10) + 0.5 * _lines(rng, m, count), 0.05, 1.0)
    phase = np.clip(0.8 * standardised(n / 10) + 1.2 * _lines(rng, m, count) - 0.3, -2.5, 2.5)
    return (amp * np.exp(1j * phase)).astype(np.complex128)


def make_probe(n: int, kind: str) -> np.ndarray:
    """Aperture (disc of radius N/4, soft edge) or Gaussian (sigma N/8), with a defocus phase.

    The maximum amplitude is 1. The defocus phase gradient stays below pi/4 rad per pixel, so
    the far field is not aliased.
    """
    y, x = np.mgrid[0:n, 0:n] - n / 2
    r = np.hypot(x, y)
    radius = n / 4
    if kind == "aperture":
        amplitude = 1.0 / (1.0 + np.exp((r - radius) / 0.7))  # soft disc edge
    elif kind == "gaussian":
        amplitude = np.exp(-(r**2) / (2 * (n / 8) ** 2))
    else:
        raise ValueError(f"probe must be one of {PROBES}, got {kind!r}")
    phase = 2.0 * math.pi * (r / radius) ** 2 / 2
    return (amplitude / amplitude.max() * np.exp(1j * phase)).astype(np.complex128)


def extract_object_patches(
    obj: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray, n: int
) -> np.ndarray:
    """Bilinear ``(len(xcoords), n, n)`` patches centred on ``(x, y)`` (module convention)."""
    out = np.empty((len(xcoords), n, n), dtype=obj.dtype)
    for i, (x, y) in enumerate(zip(xcoords, ycoords)):
        x0, y0 = x - n / 2, y - n / 2
        ix, iy = int(math.floor(x0)), int(math.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        block = obj[iy : iy + n + 1, ix : ix + n + 1]
        if block.shape != (n + 1, n + 1) or ix < 0 or iy < 0:
            raise ValueError(f"patch at ({x}, {y}) leaves the {obj.shape} object")
        top = (1 - fx) * block[:n, :n] + fx * block[:n, 1:]
        bottom = (1 - fx) * block[1:, :n] + fx * block[1:, 1:]
        out[i] = (1 - fy) * top + fy * bottom
    return out


def _scan_positions(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    g, step, n = config.grid_side, config.step, config.N
    if step <= 0:
        raise ValueError(
            f"object_size {config.object_size} is too small for {config.n_images} scan points"
        )
    start = n / 2 + config._margin
    iy, ix = np.divmod(np.arange(g * g), g)
    xy = np.stack([start + ix * step, start + iy * step], axis=1)[: config.n_images]
    jitter = min(step / 4, config._margin - 1.5)
    return xy + rng.uniform(-jitter, jitter, xy.shape)  # (n, 2) as (x, y)


def simulate_scan(config: SimulationConfig) -> PtychoData:
    """Simulate one scan, as training and inference use it; the same config always gives the
    same arrays (float32/complex64, or float64/complex128 when the config asks, to exercise the
    loading boundary's cast)."""
    rng = np.random.default_rng(config.seed)
    n = config.N
    obj = make_object(rng, config.M, n)
    probe = make_probe(n, config.probe)
    xy = _scan_positions(config, rng)
    patches = extract_object_patches(obj, xy[:, 0], xy[:, 1], n)  # (n_images, N, N)
    field = np.fft.fft2(probe[None] * patches)
    intensity = np.fft.fftshift(np.abs(field) ** 2 / (n * n), axes=(-2, -1))
    intensity *= config.photons / intensity.sum(axis=(-2, -1)).mean()
    counts = rng.poisson(intensity)
    real = np.float64 if config.dtype == "float64" else np.float32
    cplx = np.complex128 if config.dtype == "float64" else np.complex64
    logger.info(
        "simulated %d patterns N=%d on a %dx%d object, step %.1f px, %.3g photons/pattern",
        config.n_images, n, config.M, config.M, config.step, config.photons,
    )  # fmt: skip
    return PtychoData(
        diffraction=np.sqrt(counts).astype(real),
        probe=probe.astype(cplx),
        obj=obj.astype(cplx),
        xcoords=xy[:, 0].astype(np.float64),
        ycoords=xy[:, 1].astype(np.float64),
        patches=patches.astype(cplx),
        scan_index=np.arange(config.n_images, dtype=np.int64),
    )


def write_npz(scan: PtychoData, path: str | Path) -> Path:
    """Write the scan with the data-contract keys (plain arrays, no pickles)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    optional: dict[str, Any] = {
        "objectGuess": scan.obj,
        "Y": scan.patches,
        "scan_index": scan.scan_index,
    }
    np.savez(
        path,
        diffraction=scan.diffraction,
        probeGuess=scan.probe,
        xcoords=scan.xcoords,
        ycoords=scan.ycoords,
        **{key: value for key, value in optional.items() if value is not None},
    )
    return path
