"""Dataset and LightningDataModule over a scan; the data contract itself is torch-free.

Loading and validating NPZ scans (the one dtype boundary, ``load_npz``), grouping scan points
and the data-side normalisation live in :mod:`ptycho_torch.scan` (NumPy only, shared with the
torch-free inference host).
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ptycho_torch.config import DataConfig
from ptycho_torch.errors import DataError
from ptycho_torch.prepare import Groups, group_scan_points, network_input, normalisation_factor
from ptycho_torch.scan import PtychoData

__all__ = ["EpochShuffle", "PtychoDataModule", "PtychoDataset"]


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
        dataset = PtychoDataset(self.data, self.groups, self.train_samples, self.input_scale)
        sampler = EpochShuffle(len(dataset), self.config.seed)
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        dataset = PtychoDataset(self.data, self.groups, self.val_samples, self.input_scale)
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=False)


class EpochShuffle(Sampler[int]):
    """A permutation per epoch drawn from ``(seed, epoch)``: a resumed run sees the same orders.

    Lightning calls :meth:`set_epoch` before every epoch (as for ``DistributedSampler``).
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        state = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        yield from torch.randperm(self.n, generator=torch.Generator().manual_seed(state)).tolist()
