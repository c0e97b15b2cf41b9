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
from ptycho_torch.tensor_data import TensorSamples, batch_loader, network_inputs

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
    """Groups a scan for ``gridsize`` and splits the samples into train/val by ``config.seed``.

    ``in_memory``: batches are gathered from network inputs made once
    (:mod:`ptycho_torch.tensor_data`; the same values) instead of made per sample.
    """

    def __init__(
        self,
        data: PtychoData,
        gridsize: int,
        config: DataConfig,
        intensity_scale: float = 1.0,
        *,
        in_memory: bool = False,
    ) -> None:
        super().__init__()
        self.data = data
        self.config = config
        self.in_memory = in_memory
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
        self._inputs: torch.Tensor | None = None  # in_memory: every pattern's network input

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffle(len(self.train_samples), self.config.seed)
        return self._loader(self.train_samples, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_samples)

    def _loader(self, samples: np.ndarray, sampler: Sampler[int] | None = None) -> DataLoader:
        if self.in_memory:
            if self._inputs is None:
                self._inputs = network_inputs(self.data, self.input_scale)
            dataset = TensorSamples(self._inputs, self.groups, samples)
            return batch_loader(dataset, self.config.batch_size, sampler)
        plain = PtychoDataset(self.data, self.groups, samples, self.input_scale)
        return DataLoader(plain, batch_size=self.config.batch_size, sampler=sampler)


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
