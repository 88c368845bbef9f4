"""The learned helpers of distillation: adapters and the two discriminators.

* ANC discriminator (Belagiannis et al. 2018): a small MLP on the pooled pre-classifier
  embedding, teacher = real, student = fake. Its capacity is kept (d->128->256->128->1); it is
  kept from winning trivially by the regularizers in :mod:`losses`, not by shrinking it.
* Domain discriminator (Tang et al. 2019 alignment): a small conv net on an early student
  feature map, labeled batch = 0, unlabeled batch = 1.
* Adapters: a Linear from the student's embedding width to the teacher's (FitNets regression
  and the ANC discriminator input) when the widths differ.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingDiscriminator(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, 128),
            nn.ReLU(),
            nn.Linear(128, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 1),
        )

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb).squeeze(1)  # logits; BCE-with-logits is stable where sigmoid+BCE is not


class DomainDiscriminator(nn.Module):
    """Two strided convs then global pooling: it sees local low-level statistics (colour,
    texture, noise) -- exactly where a web-scraped pool differs from a curated labeled set."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 1),
        )

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() == 2:  # an early feature that is already flat: treat as 1x1 map
            fmap = fmap[:, :, None, None]
        return self.net(fmap).squeeze(1)


def adapter(student_dim: int, teacher_dim: int) -> nn.Module:
    """Linear map student -> teacher width; identity when they already match."""
    return nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)


class DistillParts(nn.Module):
    """The trainable helpers of one run (only those its loss terms need), kept in one module so
    that checkpointing and distributed gradient averaging treat them uniformly.

    ``student_side`` parameters (adapters) are trained with the student; ``disc`` parameters by
    the discriminator optimizer.
    """

    def __init__(
        self,
        *,
        student_dim: int,
        teacher_dim: int | None,
        low_channels: int | None,
        fitnet: bool,
        adv: bool,
        align: bool,
    ) -> None:
        super().__init__()
        target = teacher_dim if teacher_dim is not None else student_dim
        self.fitnet_adapter: nn.Module | None = adapter(student_dim, target) if fitnet else None
        self.anc_adapter: nn.Module | None = adapter(student_dim, target) if adv else None
        self.anc_disc: EmbeddingDiscriminator | None = EmbeddingDiscriminator(target) if adv else None
        self.domain_disc: DomainDiscriminator | None = (
            DomainDiscriminator(low_channels) if align and low_channels is not None else None
        )

    def student_side(self) -> list[nn.Parameter]:
        return [p for m in (self.fitnet_adapter, self.anc_adapter) if m is not None for p in m.parameters()]

    def disc_params(self) -> list[nn.Parameter]:
        return [p for m in (self.anc_disc, self.domain_disc) if m is not None for p in m.parameters()]
