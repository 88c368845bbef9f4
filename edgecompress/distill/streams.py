"""Deterministic batches from a labeled and an unlabeled stream.

Batch ``(epoch, step)`` is a pure function of ``(seed, epoch, step)``: each stream is an endless
sequence of seeded permutations, and every item's augmentation is seeded by its position in
the run. That is what makes resume exact without pickling a DataLoader iterator (a run killed
anywhere replays the same batches from the last epoch boundary), and what makes a data-parallel
run see the very same samples, augmented the same way, as a single process: rank ``r`` of
``w`` takes rows ``r::w`` of the global batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

_STREAM_SALT = {"labeled": 1, "unlabeled": 2}


_M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 chained; stdlib hash() is salted per process,
    numpy's SeedSequence is ~100x slower and this runs once per sample)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _M64))
    return h >> 1


class Stream:
    """One dataset as an endless, seeded sequence of permutations."""

    def __init__(self, name: str, dataset: Dataset, batch: int, seed: int) -> None:
        self.name = name
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.batch = batch
        self.seed = seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, cycle: int) -> torch.Tensor:
        if cycle not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(mix_seed(self.seed, _STREAM_SALT[self.name], cycle))
            self._perms[cycle] = torch.randperm(self.n, generator=g)
        return self._perms[cycle]

    def indices(self, global_step: int) -> list[int]:
        start = global_step * self.batch
        out = []
        for p in range(start, start + self.batch):
            out.append(int(self._perm(p // self.n)[p % self.n]))
        return out

    def fetch(self, indices: list[int], rows: list[int], salt: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices``; ``rows`` are their positions in the *global* batch, which seed their
        augmentation, so a sample is augmented the same way whichever rank loads it."""
        if isinstance(self.dataset, TensorDataset):  # fast path: no per-item transform
            idx = torch.as_tensor(indices, dtype=torch.long)
            x, y = self.dataset.tensors[0][idx], self.dataset.tensors[1][idx]
            return x, y
        xs, ys = [], []
        for row, i in zip(rows, indices, strict=True):
            # Seed each item's augmentation by its place in the run, not by process state.
            # (The CPU generator only: torch.manual_seed also queues seeds for every accelerator
            # backend, recording a stack trace each time -- milliseconds per call.)
            torch.default_generator.manual_seed(mix_seed(*salt, _STREAM_SALT[self.name], row))
            x, y = self.dataset[i]
            xs.append(x)
            ys.append(torch.as_tensor(y, dtype=torch.int64))
        return torch.stack(xs), torch.stack(ys)


class Streams:
    """The labeled and/or unlabeled stream of one run, and the epoch length.

    An epoch is one pass over the *larger* stream, or ``steps`` steps when given; the smaller
    stream cycles (a 2% labeled set is seen many times per epoch, as in semi-supervised training).
    """

    def __init__(
        self,
        labeled: Dataset | None,
        unlabeled: Dataset | None,
        *,
        batch: int,
        unlabeled_batch: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        steps: int | None = None,
    ) -> None:
        self.labeled = Stream("labeled", labeled, batch, seed) if labeled is not None else None
        self.unlabeled = Stream("unlabeled", unlabeled, unlabeled_batch, seed) if unlabeled is not None else None
        self.seed, self.rank, self.world = seed, rank, world
        lengths = [math.ceil(s.n / s.batch) for s in (self.labeled, self.unlabeled) if s is not None]
        self.steps_per_epoch = max(lengths)
        if steps is not None:
            self.steps_per_epoch = steps

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """``(x, y_labeled or None, n_labeled)`` for this rank: labeled rows first."""
        g = epoch * self.steps_per_epoch + step
        xs: list[torch.Tensor] = []
        y = None
        n_labeled = 0
        for stream in (self.labeled, self.unlabeled):
            if stream is None:
                continue
            rows = list(range(stream.batch))[self.rank :: self.world]
            idx = stream.indices(g)
            idx = [idx[r] for r in rows]
            x, yy = stream.fetch(idx, rows, (self.seed, epoch, step))
            xs.append(x)
            if stream is self.labeled:
                y, n_labeled = yy, len(idx)
        return torch.cat(xs) if len(xs) > 1 else xs[0], y, n_labeled


def mix_batch(x: torch.Tensor, alpha: float, seed: int) -> tuple[torch.Tensor, Any]:
    """Mixup of a whole batch, labeled and pool rows alike: row i becomes
    ``lam_i * x_i + (1 - lam_i) * x_perm[i]`` with ``lam_i ~ Beta(alpha, alpha)`` (folded to
    >= 0.5, so every row stays mostly itself and its label, when it has one, stays the major
    part of its target). Seeded by position in the run: exact on resume. Returns the mixed
    batch and a :class:`~edgecompress.distill.losses.Mix` (None when ``alpha`` is 0)."""
    if alpha <= 0 or x.shape[0] < 2:
        return x, None
    from edgecompress.distill.losses import Mix

    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    perm = torch.randperm(n, generator=g)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    # Beta sampling draws from the global generator: sample under a fork seeded like the rest.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lam = beta.sample((n,))
    lam = torch.maximum(lam, 1 - lam)
    shape = (n,) + (1,) * (x.dim() - 1)
    return lam.view(shape) * x + (1 - lam.view(shape)) * x[perm], Mix(perm, lam)


def stack_dataset(ds: Any, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole (small, un-augmented) evaluation split as two tensors."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    if hasattr(ds, "tensors") and callable(ds.tensors):
        return ds.tensors()
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it[0] for it in items]), torch.stack([torch.as_tensor(it[1]) for it in items])
