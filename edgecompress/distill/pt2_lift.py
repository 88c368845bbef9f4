"""Turn a ``torch.export`` program back into an eager, batch-generic, prunable module.

An ``ExportedProgram``'s own ``module()`` refuses ``.eval()``/``.train()``, checks every input
against the exported (usually batch-1) shape and holds its weights as loose tensors, so it can
neither run a training batch in one call nor be channel-pruned. The program's graph is plain
ATen, though, and every op a CNN classifier uses maps back onto an ``nn`` module or a torch
function. :func:`lift_exported` rebuilds the graph as an ``fx.GraphModule`` where

* ``aten.conv2d`` / ``aten.linear`` / ``aten.batch_norm`` become real ``nn.Conv2d`` /
  ``nn.Linear`` / ``nn.BatchNorm2d`` submodules, named after the modules they came from
  (``features.0``), holding the program's weights -- what the channel pruner and the cost
  model understand, and what a pruned student fine-tunes (BatchNorm then trains normally);
* common activations, pooling and elementwise ops become their torch functions;
* a ``view``/``reshape`` whose target shape starts with the exported batch size gets ``-1``
  there, so any batch runs in one call;
* anything else stays an ATen call (it still runs; the pruner keeps the channels it touches).

The lift is an optimisation, never a silent change of the teacher: callers compare the lifted
module with the program on real data (:func:`outputs_match`) and fall back when they differ.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

aten = torch.ops.aten

# ATen op -> the torch-level callable the pruner and the cost model know (same semantics).
_FUNCS: dict[Any, Callable[..., Any]] = {
    aten.relu.default: torch.relu,
    aten.relu_.default: torch.relu,
    aten.sigmoid.default: torch.sigmoid,
    aten.tanh.default: torch.tanh,
    aten.hardswish.default: F.hardswish,
    aten.hardswish_.default: F.hardswish,
    aten.hardsigmoid.default: F.hardsigmoid,
    aten.silu.default: F.silu,
    aten.silu_.default: F.silu,
    aten.add.Tensor: operator.add,
    aten.add_.Tensor: operator.add,
    aten.mul.Tensor: operator.mul,
    aten.mul_.Tensor: operator.mul,
    aten.sub.Tensor: operator.sub,
    aten.flatten.using_ints: torch.flatten,
    aten.cat.default: torch.cat,
    aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
    aten.mean.dim: torch.mean,
    aten.max_pool2d.default: F.max_pool2d,  # same positional order as the ATen op
    aten.avg_pool2d.default: F.avg_pool2d,
}
_RESHAPES = {aten.view.default: "view", aten.reshape.default: "reshape", aten._unsafe_view.default: "reshape"}
_IDENTITY = {aten.dropout.default, aten.clone.default, aten.contiguous.default, aten.alias.default}


class LiftError(Exception):
    """The program uses something the lift cannot rebuild (the caller falls back, saying why)."""


def _owner(target: str) -> str:
    return target.rpartition(".")[0]


def _unique(name: str, taken: set[str]) -> str:
    base, i = name or "layer", 1
    while name in taken or not name:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def lift_exported(ep: ExportedProgram, batch: int | None) -> tuple[fx.GraphModule, dict[str, str]]:
    """Rebuild ``ep`` as an eager GraphModule returning the flat tuple of the program's outputs
    (see the module docstring), and the map from the program's node names to the new ones.
    ``batch`` is the exported batch size (None when it was dynamic)."""
    state = {**ep.state_dict, **getattr(ep, "constants", {})}
    sig = ep.graph_signature
    kinds = {s.arg.name: (s.kind, s.target) for s in sig.input_specs if hasattr(s.arg, "name")}
    root = nn.Module()
    graph = fx.Graph()
    env: dict[str, Any] = {}  # old node name -> new node / python value
    tensors: dict[str, torch.Tensor] = {}  # placeholder name -> weight (for module building)
    taken: set[str] = set()
    n_inputs = 0

    def arg(a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: env[n.name])

    built: dict[str, str] = {}  # weight placeholder -> module path (a shared weight is one module)

    def module_node(node: fx.Node, key: str, make: Callable[[], nn.Module], owner: str, x: Any) -> fx.Node:
        if key not in built:
            built[key] = _add_module(root, owner, make(), taken)
        new = graph.call_module(built[key], (x,))
        new.meta.update(node.meta)
        return new

    for node in ep.graph.nodes:
        if node.op == "placeholder":
            kind, target = kinds.get(node.name, (InputKind.USER_INPUT, None))
            if kind == InputKind.USER_INPUT:
                n_inputs += 1
                env[node.name] = graph.placeholder(node.name)
            else:
                if target not in state:
                    raise LiftError(f"input {node.name} ({kind.name}) has no stored value")
                tensors[node.name] = state[target]
                env[node.name] = ("__tensor__", node.name, target)
            continue
        if node.op == "output":  # always the flat tuple of outputs; see select_outputs
            graph.output(tuple(arg(list(torch.utils._pytree.tree_leaves(node.args[0])))))
            continue
        if node.op != "call_function":
            raise LiftError(f"unsupported node kind {node.op}")
        t = node.target
        a = list(node.args)
        if t == aten.conv2d.default:
            w, b = a[1], a[2] if len(a) > 2 else None
            stride, padding, dilation, groups = (list(a[3:7]) + [1, 0, 1, 1][len(a[3:7]):])
            wt = tensors[w.name]

            def conv(wt: torch.Tensor = wt, b: Any = b, cfg: tuple[Any, ...] = (stride, padding, dilation, groups)) -> nn.Module:
                m = nn.Conv2d(wt.shape[1] * cfg[3], wt.shape[0], tuple(wt.shape[2:]), *cfg, bias=b is not None)
                _copy(m, wt, None if b is None else tensors[b.name])
                return m

            env[node.name] = module_node(node, w.name, conv, _owner(kinds[w.name][1]), env[a[0].name])
        elif t == aten.linear.default:
            w, b = a[1], a[2] if len(a) > 2 else None
            wt = tensors[w.name]

            def lin(wt: torch.Tensor = wt, b: Any = b) -> nn.Module:
                m = nn.Linear(wt.shape[1], wt.shape[0], bias=b is not None)
                _copy(m, wt, None if b is None else tensors[b.name])
                return m

            env[node.name] = module_node(node, w.name, lin, _owner(kinds[w.name][1]), env[a[0].name])
        elif t == aten.batch_norm.default:
            x, w, b, rm, rv = a[:5]
            eps = float(a[7]) if len(a) > 7 else 1e-5
            momentum = float(a[6]) if len(a) > 6 else 0.1
            if rm is None or rv is None or (len(a) > 5 and a[5]):
                raise LiftError("a batch_norm without running statistics (exported in training mode)")

            def bn(rm: Any = rm, rv: Any = rv, w: Any = w, b: Any = b, eps: float = eps, momentum: float = momentum) -> nn.Module:
                mean = tensors[rm.name]
                m = nn.BatchNorm2d(mean.numel(), eps=eps, momentum=momentum, affine=w is not None)
                with torch.no_grad():
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(tensors[rv.name])
                if w is not None:
                    _copy(m, tensors[w.name], tensors[b.name])
                return m.eval()

            env[node.name] = module_node(node, rm.name, bn, _owner(kinds[rm.name][1]), env[x.name])
        elif t in _IDENTITY:
            env[node.name] = env[a[0].name]
        elif t in _RESHAPES:
            shape = list(a[1])
            if batch is not None and shape and isinstance(shape[0], int) and shape[0] == batch:
                shape[0] = -1
            new = graph.call_method(_RESHAPES[t], (env[a[0].name], arg(shape)))
            new.meta.update(node.meta)
            env[node.name] = new
        else:
            new_args = arg(tuple(a))
            if any(isinstance(v, tuple) and v and v[0] == "__tensor__" for v in _flat(new_args)):
                new_args = _materialize(new_args, tensors, root, graph, taken)
            new = graph.call_function(_FUNCS.get(t, t), new_args, arg(dict(node.kwargs)))
            new.meta.update(node.meta)
            env[node.name] = new
    if n_inputs != 1:
        raise LiftError(f"the program takes {n_inputs} inputs")
    gm = fx.GraphModule(root, graph, class_name="LiftedTeacher")
    gm.graph.lint()
    names = {old: new.name for old, new in env.items() if isinstance(new, fx.Node)}
    return gm.eval(), names


def _copy(m: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    with torch.no_grad():
        m.weight.copy_(weight)
        if bias is not None:
            m.bias.copy_(bias)


def _add_module(root: nn.Module, owner: str, mod: nn.Module, taken: set[str]) -> str:
    """Insert ``mod`` at its original dotted path (``features.0``), creating plain containers on
    the way, so module names, tap names and pruning group keys read like the user's model."""
    path = owner if owner and owner not in taken else _unique(owner.replace(".", "_") or "layer", taken)
    parent, parts = root, path.split(".")
    for part in parts[:-1]:
        child = getattr(parent, part, None) if part in parent._modules else None
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        elif type(child) is not nn.Module:  # a real layer already sits there: go flat instead
            return _add_flat(root, mod, taken)
        parent = child
    if parts[-1] in parent._modules:
        return _add_flat(root, mod, taken)
    parent.add_module(parts[-1], mod)
    taken.add(path)
    return path


def _add_flat(root: nn.Module, mod: nn.Module, taken: set[str]) -> str:
    name = _unique("layer", taken)
    root.add_module(name, mod)
    return name


def _flat(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)) and not (v and v[0] == "__tensor__"):
        return [x for item in v for x in _flat(item)]
    return [v]


def _materialize(v: Any, tensors: dict[str, torch.Tensor], root: nn.Module, graph: fx.Graph, taken: set[str]) -> Any:
    """A weight used outside conv/linear/BN (a learned scale, a constant): a buffer + get_attr."""
    if isinstance(v, tuple) and v and v[0] == "__tensor__":
        name = _unique(("c_" + v[2]).replace(".", "_"), taken)
        root.register_buffer(name, tensors[v[1]].detach().clone())
        return graph.get_attr(name)
    if isinstance(v, (list, tuple)):
        return type(v)(_materialize(x, tensors, root, graph, taken) for x in v)
    return v


def outputs_match(a: Any, b: Any, *, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """Two (nested) outputs hold the same tensors, within float reordering tolerance."""
    fa, fb = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    if len(fa) != len(fb):
        return False
    for x, y in zip(fa, fb, strict=True):
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            if x != y:
                return False
        elif x.shape != y.shape or not torch.allclose(x.float(), y.float(), atol=atol, rtol=rtol, equal_nan=True):
            return False
    return True


def select_outputs(gm: fx.GraphModule, logits: int, extra: tuple[str, ...] = ()) -> fx.GraphModule:
    """A copy of the lifted ``gm`` returning flat output ``logits`` alone (a plain classifier, what
    the pruner and a student need) or, with ``extra`` node names (feature taps), the tuple
    ``(logits, *taps)``: taps become graph outputs instead of an interpreter recording nodes."""
    import copy

    g = copy.deepcopy(gm.graph)
    nodes = {n.name: n for n in g.nodes}
    out = next(n for n in g.nodes if n.op == "output")
    leaf = out.args[0][logits]
    out.args = ((leaf, *[nodes[e] for e in extra]) if extra else leaf,)
    new = fx.GraphModule(gm, g, class_name="LiftedTeacher")
    new.graph.eliminate_dead_code()
    new.recompile()
    return new.train(gm.training)
