"""Structured channel pruning of an arbitrary Conv/BN/Linear network (the ``pruned-teacher`` family).

Channels are coupled: a residual ``a + b`` forces ``a`` and ``b`` to keep the same channels,
a depthwise conv passes its input channels straight through, ``cat`` lays its inputs' channels
side by side, and BatchNorm / activations / pooling just carry them. We trace the model with
torch.fx, give every conv/linear output a *channel group*, merge groups that an elementwise op
couples (union-find), and freeze groups that reach the network input or output or an op we do
not understand. Each remaining group keeps its ``k`` most important channels (sum over the
group's producing convs of the L1 norm of the output filter — the classic Li et al. 2017 rule,
deterministic for given weights) and every conv / BN / linear is rebuilt with sliced weights.

The structure is fully determined by ``{group key: kept count}``, stored in the StudentSpec, so a
state_dict saved after training loads back into ``prune(teacher, kept)`` for the same teacher.
"""

from __future__ import annotations

import copy
import operator
import weakref
from typing import Any

import torch
from torch import fx, nn
from torch.nn.utils import skip_init

from edgecompress.errors import ConfigError

# Segment = (group id, length): a tensor's channel dim is a list of segments laid side by side.
Segments = list[tuple[int, int]]

_PASS_MODULES = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.SiLU, nn.GELU,
    nn.LeakyReLU, nn.Tanh, nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.Flatten,
)
_PASS_FUNCS = {
    torch.relu, torch.sigmoid, torch.tanh, torch.flatten, torch.nn.functional.relu, torch.nn.functional.relu6,
    torch.nn.functional.hardswish, torch.nn.functional.silu, torch.nn.functional.adaptive_avg_pool2d,
    torch.nn.functional.avg_pool2d, torch.nn.functional.max_pool2d, torch.nn.functional.dropout, torch.mean,
    torch.nn.functional.gelu, torch.nn.functional.sigmoid, torch.nn.functional.hardsigmoid,
}
_PASS_METHODS = {"relu", "sigmoid", "flatten", "mean", "contiguous", "clone", "view", "reshape", "relu_", "squeeze"}
_ELEMENTWISE = {operator.add, operator.mul, operator.sub, operator.iadd, operator.imul, torch.add, torch.mul, torch.sub}


class _Groups:
    """Union-find over channel groups, with sizes, a frozen flag and producing layers."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.frozen: list[bool] = []
        self.producers: list[list[tuple[int, str, int]]] = []  # (execution order, layer, channel offset)

    def new(self, size: int, producer: tuple[int, str, int] | None, frozen: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.frozen.append(frozen)
        self.producers.append([producer] if producer else [])
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        self.frozen[ra] = self.frozen[ra] or self.frozen[rb]
        self.producers[ra] += self.producers[rb]

    def freeze(self, segs: Segments) -> None:
        for g, _ in segs:
            self.frozen[self.find(g)] = True


class NotPrunable(ConfigError):
    """The teacher's graph cannot be channel-pruned; ``reason`` is why, without the advice
    (``build`` falls back to the student families itself and says so)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"pruned-teacher: {reason}; the teacher cannot be pruned: choose a student family with "
            f"`edgecompress select --family NAME` (see `edgecompress select --help`), then `edgecompress distill`"
        )
        self.reason = reason


class ChannelGraph:
    """The coupled channel groups of a traced model."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        from edgecompress.tracing import trace_shapes

        try:
            self.gm = trace_shapes(model, input_shape)
        except ConfigError as exc:
            raise NotPrunable(str(exc)) from None
        self.modules = dict(self.gm.named_modules())
        self.order = {str(n.target): i for i, n in enumerate(self.gm.graph.nodes) if n.op == "call_module"}
        self.g = _Groups()
        self.segs: dict[str, Segments] = {}  # node name -> channel segments of its output
        self.in_segs: dict[str, Segments] = {}  # conv/linear/bn module name -> its input segments
        self.out_group: dict[str, int] = {}  # conv/linear module name -> group of its output
        self._scores: dict[int, torch.Tensor] = {}
        self.source = model
        self._meta: nn.Module | None = None
        self._walk()

    # -- helpers
    def _tensor_args(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if a.name in self.segs]

    def _fresh_frozen(self, node: fx.Node) -> Segments:
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        c = int(shape[1]) if shape is not None and len(shape) >= 2 else 1
        return [(self.g.new(c, None, frozen=True), c)]

    def _couple(self, a: Segments, b: Segments) -> bool:
        if [n for _, n in a] != [n for _, n in b]:
            return False
        for (ga, _), (gb, _) in zip(a, b, strict=True):
            self.g.union(ga, gb)
        return True

    def _walk(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.segs[node.name] = self._fresh_frozen(node)
            elif node.op == "output":
                for a in node.all_input_nodes:
                    if a.name in self.segs:
                        self.g.freeze(self.segs[a.name])
            elif node.op == "call_module":
                self.segs[node.name] = self._module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self.segs[node.name] = self._function(node)
            elif node.op == "get_attr":
                self.segs[node.name] = self._fresh_frozen(node)

    def _module(self, node: fx.Node, m: nn.Module) -> Segments:
        ins = self._tensor_args(node)
        src = self.segs[ins[0].name] if ins else []
        name = str(node.target)
        shape = node.meta["tensor_meta"].shape
        if isinstance(m, nn.Conv2d):
            self.in_segs[name] = src
            if m.groups == 1:
                gid = self.g.new(m.out_channels, (self.order[name], name, 0))
                self.out_group[name] = gid
                return [(gid, m.out_channels)]
            if m.groups == m.in_channels == m.out_channels:  # depthwise: channels pass through
                off = 0
                for gid, n in src:
                    self.g.producers[self.g.find(gid)].append((self.order[name], name, off))
                    off += n
                return list(src)
            self.g.freeze(src)  # other grouped convs: leave alone
            out = self._fresh_frozen(node)
            self.out_group[name] = out[0][0]
            return out
        if isinstance(m, nn.Linear):
            self.in_segs[name] = src
            if len(node.args[0].meta["tensor_meta"].shape) != 2:
                self.g.freeze(src)
            gid = self.g.new(m.out_features, (self.order[name], name, 0))
            self.out_group[name] = gid
            return [(gid, m.out_features)]
        if isinstance(m, nn.BatchNorm2d):
            self.in_segs[name] = src
            return list(src)
        if isinstance(m, _PASS_MODULES):
            return self._passthrough(node, src, shape, reshapes=isinstance(m, nn.Flatten))
        for a in ins:  # unknown module: keep whatever it touches
            self.g.freeze(self.segs[a.name])
        return self._fresh_frozen(node)

    def _passthrough(self, node: fx.Node, src: Segments, shape: Any, reshapes: bool = False) -> Segments:
        # Flattening a map with spatial size > 1 mixes channels into features: freeze it.
        in_shape = node.all_input_nodes[0].meta["tensor_meta"].shape if node.all_input_nodes else shape
        spatial = len(in_shape) == 4 and in_shape[2] * in_shape[3] != 1
        if len(shape) < 2 or sum(n for _, n in src) != int(shape[1]) or (reshapes and spatial):
            self.g.freeze(src)
            return self._fresh_frozen(node)
        return list(src)

    def _function(self, node: fx.Node) -> Segments:
        ins = self._tensor_args(node)
        shape = node.meta.get("tensor_meta").shape if node.meta.get("tensor_meta") is not None else ()
        target = node.target
        if target in (torch.cat, torch.concat):
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            parts = node.args[0]
            if dim in (1, -3) and len(shape) == 4 and all(isinstance(p, fx.Node) and p.name in self.segs for p in parts):
                return [s for p in parts for s in self.segs[p.name]]
            for a in ins:
                self.g.freeze(self.segs[a.name])
            return self._fresh_frozen(node)
        if target in _ELEMENTWISE or target in ("add", "mul", "sub", "add_", "mul_"):
            full = [a for a in ins if tuple(a.meta["tensor_meta"].shape) == tuple(shape)]
            if not full:
                for a in ins:
                    self.g.freeze(self.segs[a.name])
                return self._fresh_frozen(node)
            base = self.segs[full[0].name]
            for a in ins:
                if a is full[0]:
                    continue
                other, a_shape = self.segs[a.name], a.meta["tensor_meta"].shape
                if len(a_shape) >= 2 and a_shape[1] == 1:
                    continue  # broadcast over channels: no coupling
                if len(a_shape) >= 2 and a_shape[1] == shape[1] and self._couple(base, other):
                    continue
                self.g.freeze(base)
                self.g.freeze(other)
            return list(base)
        if target in _PASS_FUNCS or target in _PASS_METHODS:
            if not ins:
                return self._fresh_frozen(node)
            reshapes = target in (torch.flatten, "flatten", "view", "reshape", "squeeze")
            return self._passthrough(node, self.segs[ins[0].name], shape, reshapes=reshapes)
        # Anything else (getattr, indexing, unknown functions): keep whatever it touches.
        for a in ins:
            self.g.freeze(self.segs[a.name])
        return self._fresh_frozen(node) if shape else []

    # -- public
    def prunable(self) -> dict[str, int]:
        """Prunable groups keyed by their first producing layer (in execution order) -> channel count."""
        out: dict[str, int] = {}
        for gid in range(len(self.g.parent)):
            r = self.g.find(gid)
            if r == gid and not self.g.frozen[r] and self.g.producers[r]:
                out[min(self.g.producers[r])[1]] = self.g.size[r]
        return dict(sorted(out.items()))

    def _root_for_key(self) -> dict[str, int]:
        return {min(self.g.producers[r])[1]: r for r in range(len(self.g.parent))
                if self.g.find(r) == r and self.g.producers[r]}

    def meta_model(self) -> nn.Module:
        """The traced model's structure on the meta device (copied once; deep copies of it are free)."""
        if self._meta is None:
            self._meta = copy.deepcopy(self.source).to("meta")
        return self._meta

    def importance(self, root: int) -> torch.Tensor:
        """Per-channel L1 norm of the group's producing filters, summed (computed once per group)."""
        if root not in self._scores:
            score = torch.zeros(self.g.size[root])
            for _, layer, off in self.g.producers[root]:
                w = self.modules[layer].weight.detach()[off : off + self.g.size[root]]
                score += w.abs().flatten(1).sum(1).float()
            self._scores[root] = score
        return self._scores[root]

    def keep_indices(self, kept: dict[str, int]) -> dict[int, torch.Tensor]:
        """Root group -> sorted kept channel indices (top-|kept| by summed filter L1 norm)."""
        roots = self._root_for_key()
        prunable = self.prunable()
        out: dict[int, torch.Tensor] = {}
        for key, k in kept.items():
            if key not in prunable:
                raise ConfigError(f"pruned-teacher: spec.kept has group {key!r} that this teacher does not have "
                                  f"(groups: {', '.join(prunable) or 'none'}); was the spec made for another teacher?")
            if not 1 <= k <= prunable[key]:
                raise ConfigError(f"pruned-teacher: kept[{key!r}] = {k} must be in 1..{prunable[key]}")
            r = roots[key]
            out[r] = torch.sort(torch.topk(self.importance(r), k).indices).values
        return out


def channel_graph(model: nn.Module, input_shape: tuple[int, int, int]) -> ChannelGraph:
    """``ChannelGraph(model, input_shape)``, reused while the model's parameters are unchanged.

    ``select`` prunes the same teacher at a dozen ratios; tracing it once matters. Tensor
    ``_version`` counters move on every in-place update (optimizer steps, ``copy_``), so a
    teacher whose weights changed is traced again.
    """
    key = (tuple(input_shape), tuple(p._version for p in model.parameters()))
    hit = _GRAPHS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    graph = ChannelGraph(model, input_shape)
    _GRAPHS[model] = (key, graph)
    return graph


_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[Any, ChannelGraph]] = weakref.WeakKeyDictionary()


def _select(segs: Segments, g: _Groups, keep: dict[int, torch.Tensor]) -> torch.Tensor:
    """Indices into a tensor's channel dim that survive, given per-group kept indices."""
    idx, off = [], 0
    for gid, n in segs:
        r = g.find(gid)
        idx.append(keep[r] + off if r in keep else torch.arange(n) + off)
        off += n
    return torch.cat(idx) if idx else torch.arange(0)


def _sliced_conv(m: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor, weights: bool) -> nn.Conv2d:
    depthwise = m.groups > 1
    groups = len(out_idx) if depthwise else 1
    args = (len(in_idx), len(out_idx), m.kernel_size, m.stride, m.padding, m.dilation, groups, m.bias is not None, m.padding_mode)
    if not weights:
        return nn.Conv2d(*args, device="meta")  # type: ignore[arg-type]
    # skip_init: the weights are overwritten below; kaiming init of every slice is pure cost.
    new = skip_init(nn.Conv2d, *args)
    w = m.weight.detach()[out_idx]
    new.weight.data.copy_(w if depthwise else w[:, in_idx])
    if m.bias is not None:
        new.bias.data.copy_(m.bias.detach()[out_idx])
    return new


def prune_model(model: nn.Module, input_shape: tuple[int, int, int], kept: dict[str, int], *, weights: bool = True) -> nn.Module:
    """A copy of ``model`` with each prunable group cut to ``kept[group]`` channels (weights inherited).

    ``weights=False`` returns the same structure on the meta device, without copying anything:
    what the cost model needs, at a fraction of the time.
    """
    graph = channel_graph(model, input_shape)
    keep = graph.keep_indices(kept)
    g = graph.g
    new = copy.deepcopy(model if weights else graph.meta_model())
    for sub in new.modules():
        # deepcopy also copies the teacher's forward hooks (its feature taps): a student that
        # kept them would write its activations into the teacher's tap storage.
        sub._forward_hooks.clear()
        sub._forward_pre_hooks.clear()
    for name, m in graph.modules.items():
        if name not in graph.in_segs:
            continue
        in_idx = _select(graph.in_segs[name], g, keep)
        if isinstance(m, nn.Conv2d):
            out_idx = in_idx if name not in graph.out_group else _select([(graph.out_group[name], m.out_channels)], g, keep)
            new.set_submodule(name, _sliced_conv(m, out_idx, in_idx, weights).train(m.training))
        elif isinstance(m, nn.Linear):
            out_idx = _select([(graph.out_group[name], m.out_features)], g, keep)
            if not weights:
                new.set_submodule(name, nn.Linear(len(in_idx), len(out_idx), m.bias is not None, device="meta"))
                continue
            lin = skip_init(nn.Linear, len(in_idx), len(out_idx), m.bias is not None)
            lin.weight.data.copy_(m.weight.detach()[out_idx][:, in_idx])
            if m.bias is not None:
                lin.bias.data.copy_(m.bias.detach()[out_idx])
            new.set_submodule(name, lin.train(m.training))
        elif isinstance(m, nn.BatchNorm2d):
            bn = nn.BatchNorm2d(len(in_idx), m.eps, m.momentum, m.affine, m.track_running_stats,
                                device=None if weights else "meta")
            if weights:
                bn.load_state_dict({k: (v[in_idx] if v.ndim == 1 else v) for k, v in m.state_dict().items()})
            new.set_submodule(name, bn.train(m.training))
    classifier = getattr(new, "classifier", None)
    if isinstance(classifier, nn.Linear) and hasattr(new, "num_features"):
        new.num_features = classifier.in_features  # type: ignore[assignment]
    return new


def keep_counts(prunable: dict[str, int], ratio: float) -> dict[str, int]:
    """``{group: kept}`` keeping ``ratio`` of every prunable group (at least 1; multiples of 4 past 8)."""
    if not 0 < ratio <= 1:
        raise ConfigError(f"pruned-teacher: keep ratio {ratio} must be in (0, 1]")

    def rnd(v: float) -> int:
        return max(1, int(round(v))) if v < 8 else max(8, int(round(v / 4)) * 4)

    return {k: min(n, rnd(n * ratio)) for k, n in prunable.items()}


def uniform_keep(model: nn.Module, input_shape: tuple[int, int, int], ratio: float) -> dict[str, int]:
    """``keep_counts`` over the prunable groups of ``model``."""
    return keep_counts(channel_graph(model, input_shape).prunable(), ratio)
