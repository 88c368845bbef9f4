"""Per-layer costs from the model's torch.fx graph, as the deployed runtime will execute it.

Each fx node becomes a ``LayerCost``: MACs, parameters, bytes read (input activations +
weights) and written, the output activation size, and the *kernel type* the latency predictor
keys on. Like ONNX Runtime's and TFLite's graph optimisers, BatchNorm after a conv/linear is
folded and a ReLU / ReLU6 directly after a conv/linear/add is fused: those nodes cost nothing
and write into their producer's buffer. Shape-only ops (flatten, view) alias their input.

Shapes come from ``edgecompress.tracing`` (trace_shapes) (closed form, ShapeProp as the fallback).
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from edgecompress.cost.layers import LayerCost
from edgecompress.tracing import trace_shapes

_FUSABLE_ACTS = (nn.ReLU, nn.ReLU6)
_FUSABLE_ACT_FUNCS = {torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6, "relu", "relu_"}
_ALIAS_FUNCS = {torch.flatten, "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", operator.getitem}
_ADD = {operator.add, operator.iadd, torch.add, "add", "add_"}
_BINARY = {operator.add, operator.mul, operator.sub, operator.iadd, torch.add, torch.mul, torch.cat, "add", "mul"}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    return tuple(int(s) for s in meta.shape) if meta is not None and hasattr(meta, "shape") else ()


def layer_costs(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerCost]:
    """One ``LayerCost`` per node of the traced graph, in execution order."""
    gm = trace_shapes(model, input_shape)
    modules = dict(gm.named_modules())
    users = {n.name: len(n.users) for n in gm.graph.nodes}
    kinds: dict[str, str | None] = {}  # node -> kernel type (None when folded/aliased)
    out: list[LayerCost] = []
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        shape = _shape(node)
        ins = [a for a in node.all_input_nodes if a.name in kinds or a.op == "placeholder"]
        src = ins[0] if ins else None
        in_elems = sum(_numel(_shape(a)) for a in ins)
        fused_into = src.name if src is not None and users.get(src.name) == 1 else None
        m = modules.get(node.target) if node.op == "call_module" else None
        kernel: str | None = None
        macs = params = weights = cout = cin = 0
        groups = 1
        alias: str | None = None
        op = type(m).__name__ if m is not None else getattr(node.target, "__name__", str(node.target))
        if node.op == "placeholder":
            op = "input"
        elif isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            macs = _numel(shape) * (m.in_channels // m.groups) * k
            weights, cout, cin, groups = m.weight.numel(), m.out_channels, m.in_channels, m.groups
            params = sum(p.numel() for p in m.parameters())
            if m.groups > 1:
                kernel = "dw"
            else:
                kernel = "pw" if k == 1 else "conv"
        elif isinstance(m, nn.Linear):
            macs = m.in_features * m.out_features * max(1, _numel(shape) // m.out_features)
            weights, cout, cin = m.weight.numel(), m.out_features, m.in_features
            params = sum(p.numel() for p in m.parameters())
            kernel = "fc"
        elif isinstance(m, nn.BatchNorm2d):
            params = sum(p.numel() for p in m.parameters())
            if fused_into and kinds.get(fused_into) in ("conv", "pw", "dw", "fc"):
                alias = fused_into  # folded into the conv's weights and bias at export
            else:
                kernel, macs = "elem", _numel(shape)
        elif (isinstance(m, _FUSABLE_ACTS) or node.target in _FUSABLE_ACT_FUNCS) and fused_into and (
            kinds.get(fused_into) in ("conv", "pw", "dw", "fc") or _is_binary(src)
        ):
            alias = fused_into  # fused activation epilogue
        elif isinstance(m, (nn.Identity, nn.Dropout, nn.Flatten)) or node.target in _ALIAS_FUNCS:
            alias = src.name if src is not None else None
        elif node.op in ("call_module", "call_function", "call_method") and shape:
            # activations, pooling, mul / cat, BN without a conv; residual adds are their own type
            kernel = "add" if node.target in _ADD else "elem"
            # One op per element of the larger of first input and output (pooling reads more
            # than it writes, add writes what each input holds).
            macs = max(_numel(_shape(src)) if src is not None else 0, _numel(shape))
            params = sum(p.numel() for p in m.parameters()) if m is not None else 0
        elif node.op == "get_attr":
            op = "constant"
        # An aliased node's buffer is its producer's; keep the producer's kernel type visible
        # to the next node so BN-then-ReLU after a conv both fuse.
        kinds[node.name] = kinds.get(alias) if alias is not None else kernel
        out.append(LayerCost(node.name, op, kernel, macs, params, weights, cout, in_elems, _numel(shape), shape, alias,
                             tuple(a.name for a in ins), cin, groups))
    return out


def _is_binary(node: fx.Node | None) -> bool:
    return node is not None and node.target in _BINARY
