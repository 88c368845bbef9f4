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

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgecompress.distill.loss_registry import Helper, Widths


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
    """The trainable helpers of one run -- those its active loss terms declare -- kept in one
    module so that checkpointing and distributed gradient averaging treat them uniformly.

    Each helper is an attribute under its declared name (``parts.anc_disc``); a helper some
    registered term declares but this run does not use reads as None. ``student_side``
    parameters are trained with the student, ``disc`` ones by the discriminator optimizer.
    """

    def __init__(self, helpers: Sequence[Helper] = (), widths: Widths | None = None) -> None:
        super().__init__()
        self._sides: dict[str, str] = {}
        self._built = False  # until then unknown names raise, so add_module can check them
        for h in helpers:
            if h.name in self._sides or widths is None:
                continue  # a helper shared by two terms is built once
            module = h.build(widths)
            if module is not None:
                self.add_module(h.name, module)
                self._sides[h.name] = h.side
        self._built = True

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            from edgecompress.distill.loss_registry import LOSSES

            if self.__dict__.get("_built") and any(h.name == name for term in LOSSES.values() for h in term.helpers):
                return None  # declared by a term this run does not use
            raise

    def _params(self, side: str) -> list[nn.Parameter]:
        return [p for name, s in self._sides.items() if s == side for p in getattr(self, name).parameters()]

    def student_side(self) -> list[nn.Parameter]:
        return self._params("student")

    def disc_params(self) -> list[nn.Parameter]:
        return self._params("disc")
