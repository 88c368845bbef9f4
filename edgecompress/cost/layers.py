"""The per-layer cost record shared by the traced-graph path and the arch fast path (stdlib only)."""

from __future__ import annotations

import dataclasses

# The fused kernels a CPU runtime runs; the latency predictor has one set of terms per type.
# The residual ``add`` is its own type: ONNX Runtime fuses it into the conv before it (fp32)
# or runs it as QLinearAdd (int8), so it costs differently from pooling / mul / activations.
KERNEL_TYPES = ("conv", "pw", "dw", "fc", "elem", "add")


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
    in_channels: int = 0  # conv / linear input channels (0 for other nodes)
    groups: int = 1  # conv groups (depthwise: = in_channels)
