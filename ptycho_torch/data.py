"""NPZ loading (the one dtype boundary), scan-point grouping, Dataset and LightningDataModule.

Every array enters the package here: :func:`load_npz` enforces the data contract
(ARCHITECTURE.md) and casts float64/float16/uint16 diffraction to float32 and complex128 to
complex64 with one logged note, so that nothing downstream ever sees float64.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ptycho_torch.config import DataConfig
from ptycho_torch.errors import DataError
from ptycho_torch.npz import read_npz

__all__ = [
    "Groups",
    "PtychoData",
    "PtychoDataModule",
    "PtychoDataset",
    "group_scan_points",
    "intensity_scale",
    "mean_counts",
    "network_input",
    "normalisation_factor",
    "load_npz",
]

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "probeGuess", "xcoords", "ycoords")
OPTIONAL_KEYS = ("objectGuess", "Y", "scan_index")
_DIFFRACTION_CASTS = (np.float64, np.float16, np.uint16)


@dataclass(frozen=True)
class PtychoData:
    """A scan as the package uses it: float32 diffraction, complex64 fields, float64 coordinates."""

    diffraction: np.ndarray  # (n, N, N) float32 amplitude
    probe: np.ndarray  # (N, N) complex64
    xcoords: np.ndarray  # (n,) float64 patch centres, object pixels
    ycoords: np.ndarray  # (n,) float64
    obj: np.ndarray | None = None  # (M, M) complex64 ground truth / guess ("objectGuess")
    patches: np.ndarray | None = None  # (n, N, N) complex64 ground-truth patches ("Y")
    scan_index: np.ndarray | None = None  # (n,) int64

    @property
    def n(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:
        return int(self.diffraction.shape[-1])


def _expect_shape(path: Path, key: str, value: np.ndarray, expected: tuple[object, ...]) -> None:
    ok = value.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, value.shape)
    )
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise DataError(f"{path}: key {key!r} must have shape {shown}, found {value.shape}")


def _to_complex64(path: Path, key: str, value: np.ndarray, casts: list[str]) -> np.ndarray:
    if value.dtype == np.complex64:
        return value
    if value.dtype == np.complex128 or np.issubdtype(value.dtype, np.floating):
        casts.append(f"{key} {value.dtype}->complex64")
        return value.astype(np.complex64)
    raise DataError(f"{path}: key {key!r} must be complex64, found {value.dtype}")


def _to_float64_coords(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise DataError(f"{path}: key {key!r} must be float64, found {value.dtype}")
    value = value.astype(np.float64)
    if not np.all(np.isfinite(value)):
        raise DataError(f"{path}: key {key!r} has non-finite values; expected finite coordinates")
    return value


def _diffraction(path: Path, value: np.ndarray, casts: list[str]) -> np.ndarray:
    if value.ndim != 3 or value.shape[1] != value.shape[2] or value.shape[0] == 0:
        raise DataError(
            f"{path}: key 'diffraction' must have shape (n, N, N) with n >= 1, found {value.shape}"
        )
    if value.dtype != np.float32:
        if not any(value.dtype == t for t in _DIFFRACTION_CASTS):
            raise DataError(
                f"{path}: key 'diffraction' must be float32 (float64, float16 and uint16 are "
                f"cast), found {value.dtype}"
            )
        casts.append(f"diffraction {value.dtype}->float32")
        value = value.astype(np.float32)
    bad = ~np.isfinite(value)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"{path}: key 'diffraction' has {int(bad.sum())} non-finite values (first in pattern "
            f"{first}); expected finite amplitudes >= 0"
        )
    if (value < 0).any():
        first = int(np.argwhere(value < 0)[0][0])
        raise DataError(
            f"{path}: key 'diffraction' has {int((value < 0).sum())} negative values (first in "
            f"pattern {first}); expected amplitudes >= 0 (sqrt of counts, not intensities minus "
            "background)"
        )
    return value


def load_npz(path: str | Path) -> PtychoData:
    """Load and validate a scan NPZ; the only place where dtypes are converted.

    Raises:
        DataError: missing file or key, pickled/object array, wrong shape or dtype, negative or
            non-finite diffraction. The message names the key, what was expected and found.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; pass --data PATH to an .npz scan")
    arrays = read_npz(path, what="data file")  # no pickles; sizes checked before allocating
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{path}: missing key(s) {missing}; expected {list(REQUIRED_KEYS)} "
            f"(optional {list(OPTIONAL_KEYS)}), found {sorted(arrays)}"
        )
    raw = {k: arrays[k] for k in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if k in arrays}
    casts: list[str] = []
    diffraction = _diffraction(path, raw["diffraction"], casts)
    n, big_n = diffraction.shape[0], diffraction.shape[-1]
    _expect_shape(path, "probeGuess", raw["probeGuess"], (big_n, big_n))
    probe = _to_complex64(path, "probeGuess", raw["probeGuess"], casts)
    coords = {}
    for key in ("xcoords", "ycoords"):
        _expect_shape(path, key, raw[key], (n,))
        coords[key] = _to_float64_coords(path, key, raw[key])
    obj = patches = scan_index = None
    if "objectGuess" in raw:
        _expect_shape(path, "objectGuess", raw["objectGuess"], (None, None))
        obj = _to_complex64(path, "objectGuess", raw["objectGuess"], casts)
    if "Y" in raw:
        _expect_shape(path, "Y", raw["Y"], (n, big_n, big_n))
        patches = _to_complex64(path, "Y", raw["Y"], casts)
    if "scan_index" in raw:
        _expect_shape(path, "scan_index", raw["scan_index"], (n,))
        if not np.issubdtype(raw["scan_index"].dtype, np.integer):
            raise DataError(
                f"{path}: key 'scan_index' must be int, found {raw['scan_index'].dtype}"
            )
        scan_index = raw["scan_index"].astype(np.int64)
    if casts:
        logger.warning("%s: cast at load to the float32 contract: %s", path.name, ", ".join(casts))
    return PtychoData(
        diffraction=diffraction,
        probe=probe,
        xcoords=coords["xcoords"],
        ycoords=coords["ycoords"],
        obj=obj,
        patches=patches,
        scan_index=scan_index,
    )


def mean_counts(diffraction: np.ndarray, indices: np.ndarray | None = None) -> float:
    """Mean over patterns (or over the patterns of ``indices``, repeats counted) of ``sum(d**2)``."""
    sums = np.sum(np.square(diffraction, dtype=np.float64), axis=(-2, -1))  # (n,)
    value = float(np.mean(sums if indices is None else sums[indices]))
    if not value > 0:
        raise DataError(f"diffraction has no counts (mean sum of squares {value}); is it all zero?")
    return value


def intensity_scale(diffraction: np.ndarray, nphotons: float | None = None) -> float:
    """The original's intensity scale ``sqrt(nphotons) / (N/2)``.

    ``nphotons`` defaults to the data's own mean counts per pattern, so that the network input
    ``normalised * scale`` is the measured amplitude itself. The network divides its input by
    this scale (``exp(log_scale)``), so it sees the normalised data.
    """
    n = diffraction.shape[-1]
    photons = mean_counts(diffraction) if nphotons is None else float(nphotons)
    if not photons > 0:
        raise DataError(f"nphotons must be > 0, got {photons}")
    return math.sqrt(photons) / (n / 2)


def normalisation_factor(diffraction: np.ndarray, indices: np.ndarray | None = None) -> float:
    """The original's ``normalize_data`` factor: ``sqrt((N/2)**2 / mean(sum(d**2)))``.

    The mean runs over the patterns the model will see: every group member of ``indices``
    (``(S, C)``, repeats counted), or every pattern.
    """
    n = diffraction.shape[-1]
    return math.sqrt((n / 2) ** 2 / mean_counts(diffraction, indices))


def network_input(diffraction: np.ndarray, factor: float, scale: float) -> np.ndarray:
    """``float32(float32(d * factor) * scale)``: the original's ``X * intensity_scale``."""
    x = (diffraction * np.float32(factor)).astype(np.float32, copy=False)
    return (x * np.float32(scale)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Groups:
    """Samples of C scan points each: indices into the scan and positions relative to the group centroid."""

    indices: np.ndarray  # (S, C) int64
    positions: np.ndarray  # (S, C, 2) float32, (x, y) pixels relative to the centroid


def group_scan_points(
    xcoords: np.ndarray, ycoords: np.ndarray, gridsize: int, neighbours: int = 6, seed: int = 0
) -> Groups:
    """One sample per scan point: the point plus ``gridsize**2 - 1`` of its nearest neighbours.

    The companions are drawn (seeded) from the ``max(neighbours, C - 1)`` nearest points;
    gridsize 1 gives one-point groups at position zero.
    """
    c = gridsize * gridsize
    xy = np.stack([xcoords, ycoords], axis=1).astype(np.float64)  # (n, 2)
    n = len(xy)
    if c == 1:
        return Groups(np.arange(n, dtype=np.int64)[:, None], np.zeros((n, 1, 2), np.float32))
    if n < c:
        raise DataError(f"gridsize {gridsize} needs at least {c} scan points, found {n}")
    k = min(max(neighbours, c - 1), n - 1)
    rng = np.random.default_rng(seed)
    indices = np.empty((n, c), dtype=np.int64)
    for start in range(0, n, 1024):  # chunked distances keep memory at 1024 x n
        block = xy[start : start + 1024]
        d2 = ((block[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]  # (b, k)
        for row, candidates in enumerate(nearest):
            chosen = rng.choice(candidates, size=c - 1, replace=False)
            indices[start + row] = np.concatenate([[start + row], chosen])
    points = xy[indices]  # (n, C, 2)
    positions = points - points.mean(axis=1, keepdims=True)
    return Groups(indices, positions.astype(np.float32))


class PtychoDataset(Dataset):
    """``(diffraction (C, N, N), positions (C, 2))`` float32 tensors per sample."""

    def __init__(
        self,
        data: PtychoData,
        groups: Groups,
        samples: np.ndarray | None = None,
        input_scale: tuple[float, float] = (1.0, 1.0),
    ):
        self.diffraction = data.diffraction
        self.groups = groups
        self.samples = np.arange(len(groups.indices)) if samples is None else samples
        self.factor, self.scale = input_scale  # normalisation factor, intensity scale
        if self.diffraction.dtype != np.float32:  # load_npz guarantees it; a hand-built one may not
            raise DataError(f"diffraction must be float32, found {self.diffraction.dtype}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.samples[item]
        x = network_input(self.diffraction[self.groups.indices[s]], self.factor, self.scale)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.groups.positions[s])


class PtychoDataModule(L.LightningDataModule):
    """Groups a scan for ``gridsize`` and splits the samples into train/val by ``config.seed``."""

    def __init__(
        self, data: PtychoData, gridsize: int, config: DataConfig, intensity_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.data = data
        self.config = config
        self.groups = group_scan_points(
            data.xcoords, data.ycoords, gridsize, config.neighbours, config.seed
        )
        # the original normalises over every group member of the data set, then scales
        factor = normalisation_factor(data.diffraction, self.groups.indices)
        self.input_scale = (factor, intensity_scale)
        order = np.random.default_rng(config.seed).permutation(len(self.groups.indices))
        n_val = int(round(config.val_fraction * len(order)))
        if n_val >= len(order):
            n_val = len(order) - 1
        self.val_samples = np.sort(order[:n_val])
        self.train_samples = np.sort(order[n_val:])

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed)
        dataset = PtychoDataset(self.data, self.groups, self.train_samples, self.input_scale)
        return DataLoader(
            dataset, batch_size=self.config.batch_size, shuffle=True, generator=generator
        )

    def val_dataloader(self) -> DataLoader:
        dataset = PtychoDataset(self.data, self.groups, self.val_samples, self.input_scale)
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=False)
