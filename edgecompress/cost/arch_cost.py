"""Fast path: the layer costs of an arch-string student computed from the arch, without torch.

``select`` costs a hundred candidates per call; tracing each one with torch.fx takes ~40 ms
and propagating shapes on the meta device ~300 ms, which would make a table take tens of
seconds. The arch string already fixes every shape, so this module emits exactly the
``LayerCost`` list that ``graph.layer_costs`` derives from the traced ``BlockNet`` (same node
order, the same folding / fusion / aliasing), in microseconds. Each block type's ops come from
its registered definition (students/block_types.py); this module is the emitter they write to. A test checks the two agree on
every figure for many random architectures; ``graph.layer_costs`` stays the reference and is
what any other model (the teacher, pruned students) is costed with.
"""

from __future__ import annotations

from edgecompress.cost.layers import LayerCost
from edgecompress.students.arch import parse_arch, scale_channels
from edgecompress.students.block_types import get_block

_FUSED_ACTS = ("relu", "relu6")


class _Emitter:
    def __init__(self) -> None:
        self.layers: list[LayerCost] = []
        self.n = 0

    def node(self, op: str, kernel: str | None, shape: tuple[int, ...], inputs: list[tuple[str, int]], *,
             macs: int = 0, params: int = 0, weights: int = 0, cout: int = 0, alias: str | None = None,
             cin: int = 0, groups: int = 1) -> str:
        self.n += 1
        name = f"n{self.n}"
        out = 1
        for s in shape:
            out *= s
        self.layers.append(LayerCost(name, op, kernel, macs, params, weights, cout, sum(e for _, e in inputs), out,
                                     shape, alias, tuple(n for n, _ in inputs), cin, groups))
        return name

    def conv(self, x: str, cin: int, cout: int, h: int, w: int, k: int, stride: int, groups: int, bias: bool) -> tuple[str, int, int]:
        ho, wo = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        weights = cout * (cin // groups) * k * k
        kernel = "dw" if groups > 1 else ("pw" if k == 1 else "conv")
        name = self.node("Conv2d", kernel, (1, cout, ho, wo), [(x, cin * h * w)], macs=cout * ho * wo * (cin // groups) * k * k,
                         params=weights + (cout if bias else 0), weights=weights, cout=cout, cin=cin, groups=groups)
        return name, ho, wo

    def act(self, x: str, act: str, shape: tuple[int, ...], fusable: bool) -> str:
        elems = 1
        for s in shape:
            elems *= s
        if act in _FUSED_ACTS and fusable:
            return self.node("ReLU", None, shape, [(x, elems)], alias=x)
        return self.node("Hardswish" if act == "hs" else "ReLU", "elem", shape, [(x, elems)], macs=elems)

    def conv_bn_act(self, x: str, cin: int, cout: int, h: int, w: int, k: int, stride: int, groups: int, act: str) -> tuple[str, int, int]:
        c, ho, wo = self.conv(x, cin, cout, h, w, k, stride, groups, bias=False)
        shape = (1, cout, ho, wo)
        y = self.node("BatchNorm2d", None, shape, [(c, cout * ho * wo)], params=2 * cout, alias=c)
        if act:
            y = self.act(y, act, shape, fusable=True)
        return y, ho, wo

    def identity(self, x: str, shape: tuple[int, ...]) -> str:
        elems = 1
        for s in shape:
            elems *= s
        return self.node("Identity", None, shape, [(x, elems)], alias=x)

    def se(self, x: str, c: int, h: int, w: int) -> str:
        mid = max(8, int(c * 0.25))
        p = self.node("AdaptiveAvgPool2d", "elem", (1, c, 1, 1), [(x, c * h * w)], macs=c * h * w)
        r, _, _ = self.conv(p, c, mid, 1, 1, 1, 1, 1, bias=True)
        r = self.act(r, "relu", (1, mid, 1, 1), fusable=True)
        e, _, _ = self.conv(r, mid, c, 1, 1, 1, 1, 1, bias=True)
        g = self.node("Sigmoid", "elem", (1, c, 1, 1), [(e, c)], macs=c)
        return self.node("mul", "elem", (1, c, h, w), [(x, c * h * w), (g, c)], macs=c * h * w)

    def add(self, a: str, b: str, shape: tuple[int, ...]) -> str:
        elems = shape[1] * shape[2] * shape[3]
        return self.node("add", "add", shape, [(a, elems), (b, elems)], macs=elems)


def arch_layer_costs(arch: str, width_mult: float, input_shape: tuple[int, int, int], num_classes: int) -> list[LayerCost]:
    """The LayerCost list of ``BlockNet(arch, num_classes, input_shape[0], width_mult)`` at batch 1."""
    em = _Emitter()
    cin, h, w = input_shape
    x = em.node("input", None, (1, cin, h, w), [])
    for b in parse_arch(arch):
        cout = scale_channels(b.channels, width_mult)
        block = get_block(b.type)  # the same definition BlockNet builds the module from
        for i in range(b.repeats):
            x, h, w = block.cost(em, x, b, cin, cout, h, w, b.stride if i == 0 else 1)
            cin = cout
    p = em.node("AdaptiveAvgPool2d", "elem", (1, cin, 1, 1), [(x, cin * h * w)], macs=cin * h * w)
    f = em.node("flatten", None, (1, cin), [(p, cin)], alias=p)
    em.node("Linear", "fc", (1, num_classes), [(f, cin)], macs=cin * num_classes, params=cin * num_classes + num_classes,
            weights=cin * num_classes, cout=num_classes, cin=cin)
    return em.layers
