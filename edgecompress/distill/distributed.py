"""Data parallelism on torch.distributed, launched by ``torchrun`` (gloo on CPU, nccl on GPU).

Gradients are averaged explicitly after each backward (one flattened all-reduce per
optimizer) instead of wrapping the student in DDP: a distillation step runs the student
once but the discriminators several times with detached inputs, and DDP's one-forward /
one-backward bookkeeping does not fit that; an explicit all-reduce is also easy to read.
Every rank computes the same validation metrics (identical weights, full validation set);
only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size())


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce the mean gradient of ``params`` across ranks (one flat buffer)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_ranks_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating buffers (BatchNorm running statistics) so every rank holds one model."""
    if not info.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data, op=dist.ReduceOp.SUM)
            b.data /= info.world


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
