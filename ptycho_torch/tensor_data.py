"""Training batches gathered from tensors made once (``StepConfig.in_memory_data``).

:class:`ptycho_torch.data.PtychoDataset` makes each sample's network input when it is asked for,
and the DataLoader stacks a batch of them: a Python call per sample per step. Here the network
input of every pattern is made once, one float32 tensor the size of the diffraction, and a batch
is one gather by the group indices: the same values (the normalisation is elementwise), no
per-sample work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ptycho_torch.prepare import Groups, network_input
from ptycho_torch.scan import PtychoData

__all__ = ["TensorSamples", "batch_loader", "network_inputs"]


def network_inputs(data: PtychoData, input_scale: tuple[float, float]) -> Tensor:
    """``(n, N, N)`` float32: every pattern's network input (``input_scale``: normalisation
    factor, intensity scale), as :class:`~ptycho_torch.data.PtychoDataset` makes them."""
    return torch.from_numpy(network_input(data.diffraction, *input_scale))


class TensorSamples(Dataset):
    """``(diffraction (C, N, N), positions (C, 2))`` of the chosen samples, from tensors in memory.

    Args:
        inputs: :func:`network_inputs` of the scan (shared by the training and validation sets).
        groups: the samples' scan points and positions.
        samples: which samples (indices into ``groups``); None: all.
    """

    def __init__(self, inputs: Tensor, groups: Groups, samples: np.ndarray | None = None) -> None:
        chosen = np.arange(len(groups.indices)) if samples is None else samples
        self.inputs = inputs  # (n, N, N)
        self.indices = torch.from_numpy(np.ascontiguousarray(groups.indices[chosen]))  # (S, C)
        self.positions = torch.from_numpy(np.ascontiguousarray(groups.positions[chosen]))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Tensor, Tensor]:
        return self.inputs[self.indices[item]], self.positions[item]

    def __getitems__(self, items: Sequence[int]) -> tuple[Tensor, Tensor]:
        """A whole batch at once (the DataLoader calls this instead of one item at a time)."""
        rows = torch.as_tensor(items)
        return self.inputs[self.indices[rows]], self.positions[rows]  # (B, C, N, N), (B, C, 2)


def batch_loader(
    dataset: TensorSamples, batch_size: int, sampler: Sampler[int] | None = None
) -> DataLoader:
    """Batches of ``dataset`` in ``sampler``'s order (None: in order), gathered whole."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=_whole_batch)


def _whole_batch(batch: Any) -> Any:
    return batch  # __getitems__ made it already
