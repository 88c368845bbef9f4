"""The teacher's cost: the reference every student is compressed against.

Students are costed from their graph (:func:`~edgecompress.cost.estimate.model_cost`); the
teacher is costed the same way when it is an eager module, so the compression ratio compares
like with like. Teachers without an eager module still get MACs and parameters:

- ``torch.export`` programs and TorchScript: one batch-1 forward under ``FlopCounterMode``
  (convolutions and matrix products, 2 FLOPs per MAC: the same layers the cost model counts);
- ONNX: ONNX shape inference, then Conv / Gemm / MatMul MACs from the weight shapes.

Those give no per-kernel features, so no predicted latency: the compression check then uses
MACs and parameters only, and says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgecompress.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ReferenceCost:
    """What the cost model knows about the teacher."""

    macs: int
    params: int
    source: str  # "graph" | "flop-counter" | "onnx"
    size_bytes: dict[str, int] | None = None  # per precision, graph costing only
    features: dict[str, float] | None = None  # latency-predictor features, graph costing only
    peak_activation_elems: int | None = None  # graph costing only

    def to_dict(self) -> dict[str, Any]:
        return {"macs": self.macs, "params": self.params, "source": self.source, "size_bytes": self.size_bytes}


def module_reference(module: Any, input_shape: tuple[int, int, int]) -> ReferenceCost:
    """Graph costing of an eager module; FlopCounterMode when torch.fx cannot trace it."""
    from edgecompress.cost.estimate import model_cost

    try:
        mc = model_cost(module, input_shape)
    except ConfigError:
        return flop_reference(module, input_shape, sum(p.numel() for p in module.parameters()))
    return ReferenceCost(mc.macs, mc.params, "graph", dict(mc.size_bytes), dict(mc.features), mc.peak_activation_elems)


def flop_reference(forward: Any, input_shape: tuple[int, int, int], params: int) -> ReferenceCost:
    """MACs of one batch-1 call of ``forward`` (any torch callable), counted by the dispatcher."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        forward(torch.zeros(1, *input_shape))
    return ReferenceCost(int(counter.get_total_flops()) // 2, int(params), "flop-counter")


def onnx_reference(path: str | Path, input_shape: tuple[int, int, int]) -> ReferenceCost:
    """Conv / Gemm / MatMul MACs of an ONNX model at batch 1, from inferred shapes."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i).shape for i in g.initializer}
    inp = next(i for i in g.input if i.name not in inits)
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims, (1, *input_shape), strict=False):
        d.ClearField("dim_param")
        d.dim_value = v
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(shape_inference.infer_shapes(model).graph.value_info) + list(g.output):
        shapes[vi.name] = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
    macs = 0
    for n in g.node:
        out = shapes.get(n.output[0])
        if not out or 0 in out:
            continue
        if n.op_type == "Conv" and n.input[1] in inits:
            w = inits[n.input[1]]  # (Cout, Cin/groups, kh, kw): one output element costs Cin/g*kh*kw MACs
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul") and n.input[1] in inits:
            w = inits[n.input[1]]
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            k = w[-1] if (n.op_type == "Gemm" and trans_b) else w[-2] if len(w) >= 2 else w[0]
            macs += int(np.prod(out)) * int(k)
    params = int(sum(int(np.prod(s)) for s in inits.values()))
    return ReferenceCost(macs, params, "onnx")


def teacher_reference(teacher: Any, input_shape: tuple[int, int, int]) -> ReferenceCost | None:
    """The reference cost of a loaded :class:`~edgecompress.distill.teacher.Teacher` (duck-typed
    so ``cost`` does not import ``distill``); None when nothing can count it."""
    module = getattr(teacher, "module", None)
    if module is not None:
        return module_reference(module, input_shape)
    if getattr(teacher, "format", "") == "onnx" and getattr(teacher, "path", None) is not None:
        try:
            return onnx_reference(teacher.path, input_shape)
        except Exception:  # an exotic graph: no reference rather than a crash in select
            return None
    try:
        return flop_reference(teacher, input_shape, int(getattr(teacher, "parameter_count", lambda: 0)()))
    except Exception:
        return None
