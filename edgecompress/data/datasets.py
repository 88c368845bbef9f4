"""torch Datasets over a raw source: one split, one transform pipeline, labels kept or dropped."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgecompress.data.sources import Source
from edgecompress.data.transforms import Pipeline


class SplitDataset(Dataset):
    """Items ``indices`` of ``source`` as ``(x float32 (C, H, W) normalized, y int64)``.

    ``train=True`` applies the pipeline's augmentation; ``hide_labels=True`` yields y = -1
    (the unlabeled role), while :attr:`hidden_labels` keeps the true labels for measurement
    only. Nothing is decoded until an item is asked for, so DataLoader workers share the work
    and memory stays flat for folder and memory-mapped sources.
    """

    def __init__(
        self,
        source: Source,
        indices: np.ndarray,
        pipeline: Pipeline,
        *,
        train: bool = False,
        hide_labels: bool = False,
    ) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.pipeline = pipeline
        self.train = train
        self.hide_labels = hide_labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        x = self.pipeline(self.source.image(j), train=self.train)
        y = -1 if self.hide_labels else int(self.source.labels[j])
        return x, torch.tensor(y, dtype=torch.int64)

    @property
    def targets(self) -> np.ndarray:
        """Labels as the training code sees them (-1 everywhere when hidden)."""
        if self.hide_labels:
            return np.full(len(self), -1, np.int64)
        return self.source.labels[self.indices]

    @property
    def hidden_labels(self) -> np.ndarray:
        """True labels (-1 = none / out of class) — for measurement, never for training."""
        return self.source.labels[self.indices]

    def raw(self, i: int) -> torch.Tensor:
        """Item ``i`` as float [0, 1] (C, H, W) at the input shape: no augmentation, no normalization."""
        return self.pipeline.raw(self.source.image(int(self.indices[i])))

    def raw_batch(self, idx: np.ndarray | list[int]) -> torch.Tensor:
        return torch.stack([self.raw(int(i)) for i in idx]) if len(idx) else torch.empty(0)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split stacked (no augmentation) — convenient for small sets and calibration."""
        xs = [self.pipeline(self.source.image(int(j)), train=False) for j in self.indices]
        x = torch.stack(xs) if xs else torch.empty((0, *self.pipeline.preprocessing.input_shape))
        return x, torch.as_tensor(self.targets, dtype=torch.int64)
