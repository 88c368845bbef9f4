"""The per-layer cost record shared by the traced-graph path and the arch fast path (stdlib only)."""

from __future__ import annotations

import dataclasses

# The fused kernels a CPU runtime runs; the latency predictor has one set of terms per type.
KERNEL_TYPES = ("conv", "pw", "dw", "fc", "elem")


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Cost of one graph node. ``kernel`` is None for nodes folded/fused/aliased away."""

    name: str
    op: str
    kernel: str | None
    macs: int
    params: int
    weight_elems: int  # conv / linear weight elements (what int8 quantizes)
    out_channels: int  # bias / per-channel scale count for conv & linear
    in_elems: int
    out_elems: int
    out_shape: tuple[int, ...]
    alias_of: str | None = None  # fused / aliased into this producer's buffer
    inputs: tuple[str, ...] = ()  # names of the nodes it reads
