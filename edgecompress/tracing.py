"""torch.fx tracing with output shapes: what costing (``cost``) and channel pruning (``students``)
both read, kept in neither package so that neither imports the other.

Fast output-shape inference over a torch.fx graph, with ShapeProp as the fallback.

``ShapeProp`` runs the model: real convolutions on CPU (a second per candidate for a
teacher-sized model on a busy 2-core machine) or meta kernels (~300 ms for a 100-node graph).
Costing and pruning need only shapes, and the ops a CNN classifier uses have closed-form
output shapes, so we compute those directly and fall back to ``ShapeProp`` only when the graph
holds an op we do not know. The result is stored the way ShapeProp stores it
(``node.meta["tensor_meta"].shape``) so callers do not care which path ran.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from edgecompress.errors import ConfigError


class _Meta(NamedTuple):
    shape: torch.Size


_SAME = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.SiLU, nn.GELU, nn.LeakyReLU,
         nn.Tanh, nn.Identity, nn.Dropout)
_SAME_FUNCS = {torch.relu, torch.sigmoid, torch.tanh, torch.nn.functional.relu, torch.nn.functional.relu6,
               torch.nn.functional.hardswish, torch.nn.functional.silu, torch.nn.functional.gelu,
               torch.nn.functional.sigmoid, torch.nn.functional.hardsigmoid, torch.nn.functional.dropout,
               "relu", "sigmoid", "contiguous", "clone", "relu_"}
_BINARY = {operator.add, operator.mul, operator.sub, operator.truediv, operator.iadd, operator.imul,
           torch.add, torch.mul, torch.sub, "add", "mul", "sub", "add_", "mul_"}


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


class _Unknown(Exception):
    pass


def _module_shape(m: nn.Module, x: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise _Unknown
        kh, kw = _pair(m.kernel_size)
        sh, sw = _pair(m.stride)
        ph, pw = _pair(m.padding)
        dh, dw = _pair(m.dilation)
        return (x[0], m.out_channels, _conv_out(x[2], kh, sh, ph, dh), _conv_out(x[3], kw, sw, pw, dw))
    if isinstance(m, nn.Linear):
        return (*x[:-1], m.out_features)
    if isinstance(m, _SAME):
        return x
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        oh, ow = _pair(m.output_size)
        if None in (oh, ow):
            raise _Unknown
        return (x[0], x[1], oh, ow)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        if getattr(m, "ceil_mode", False) or getattr(m, "dilation", 1) not in (1, (1, 1)):
            raise _Unknown
        kh, kw = _pair(m.kernel_size)
        sh, sw = _pair(m.stride or m.kernel_size)
        ph, pw = _pair(m.padding)
        return (x[0], x[1], _conv_out(x[2], kh, sh, ph, 1), _conv_out(x[3], kw, sw, pw, 1))
    if isinstance(m, nn.Flatten):
        return _flatten(x, m.start_dim, m.end_dim)
    raise _Unknown


def _flatten(x: tuple[int, ...], start: int = 0, end: int = -1) -> tuple[int, ...]:
    start, end = start % len(x), end % len(x)
    n = 1
    for v in x[start : end + 1]:
        n *= v
    return (*x[:start], n, *x[end + 1 :])


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    # numpy rules, by hand: torch.broadcast_shapes imports sympy (seconds) on first use.
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise _Unknown
        out.append(max(x, y))
    return tuple(out)


def _function_shape(node: fx.Node, shape_of: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    t = node.target
    args = node.args
    first = shape_of[args[0].name] if args and isinstance(args[0], fx.Node) else None
    if t in _SAME_FUNCS and first is not None:
        return first
    if t in _BINARY:
        shapes = [shape_of[a.name] if isinstance(a, fx.Node) else () for a in args[:2]]
        return _broadcast(shapes[0], shapes[1])
    if t in (torch.flatten, "flatten") and first is not None:
        start = node.kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
        end = node.kwargs.get("end_dim", args[2] if len(args) > 2 else -1)
        return _flatten(first, int(start), int(end))
    if t in (torch.mean, "mean") and first is not None:
        dims = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
        keep = bool(node.kwargs.get("keepdim", args[2] if len(args) > 2 else False))
        if dims is None:
            raise _Unknown
        dims = {int(d) % len(first) for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
        return tuple(1 if i in dims else v for i, v in enumerate(first) if keep or i not in dims)
    if t is torch.nn.functional.adaptive_avg_pool2d and first is not None:
        oh, ow = _pair(node.kwargs.get("output_size", args[1] if len(args) > 1 else 1))
        return (first[0], first[1], oh, ow)
    if t in (torch.cat, torch.concat):
        parts = args[0]
        dim = int(node.kwargs.get("dim", args[1] if len(args) > 1 else 0))
        shapes = [shape_of[p.name] for p in parts]  # type: ignore[union-attr]
        d = dim % len(shapes[0])
        return tuple(sum(s[d] for s in shapes) if i == d else v for i, v in enumerate(shapes[0]))
    raise _Unknown


def propagate_shapes(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> None:
    """Annotate every node with ``meta['tensor_meta'].shape`` for a batch-1 input."""
    modules = dict(gm.named_modules())
    shape_of: dict[str, tuple[int, ...]] = {}
    try:
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if shape_of:
                    raise _Unknown  # more than one input
                s: tuple[int, ...] = (1, *input_shape)
            elif node.op == "call_module":
                s = _module_shape(modules[node.target], shape_of[node.args[0].name])
            elif node.op in ("call_function", "call_method"):
                s = _function_shape(node, shape_of)
            elif node.op == "output":
                continue
            else:
                raise _Unknown
            shape_of[node.name] = s
            node.meta["tensor_meta"] = _Meta(torch.Size(s))
    except (_Unknown, KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError):
        for node in gm.graph.nodes:
            node.meta.pop("tensor_meta", None)
        device = next((p.device for p in gm.parameters()), torch.device("cpu"))
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape, device=device))


def trace_shapes(model: nn.Module, input_shape: tuple[int, int, int]) -> fx.GraphModule:
    """fx-trace ``model`` and annotate each node with its output shape (batch 1)."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for data-dependent Python control flow
        raise ConfigError(f"model {type(model).__name__} cannot be traced by torch.fx ({type(exc).__name__}: {exc})") from None
    propagate_shapes(gm, input_shape)
    return gm
