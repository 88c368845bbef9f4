"""Block types of arch strings as registered definitions (stdlib only): one entry per type gives
both the module (``BlockNet`` builds it) and its layer costs (``cost/arch_cost.py`` emits them
from the string alone, without torch), so the two cannot drift apart silently. A test checks,
for random architectures, that the emitted costs equal those traced from the built module.

Adding a block type is one file: its ``nn.Module`` and one ``register_block(BlockType(...))``
whose ``cost`` replays the module's ops on the emitter in the order the module runs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgecompress.students.arch import BlockArgs


class CostEmitter(Protocol):
    """What a block's cost function may emit (implemented by ``cost/arch_cost.py``). ``x`` names
    are the emitter's node names; shapes are (1, C, H, W)."""

    def conv_bn_act(self, x: str, cin: int, cout: int, h: int, w: int, k: int, stride: int, groups: int,
                    act: str) -> tuple[str, int, int]: ...

    def identity(self, x: str, shape: tuple[int, ...]) -> str: ...

    def se(self, x: str, c: int, h: int, w: int) -> str: ...

    def add(self, a: str, b: str, shape: tuple[int, ...]) -> str: ...

    def act(self, x: str, act: str, shape: tuple[int, ...], fusable: bool) -> str: ...


# (emitter, input node, block args, cin, cout, h, w, stride) -> (output node, h, w)
CostFn = Callable[["CostEmitter", str, "BlockArgs", int, int, int, int, int], tuple[str, int, int]]
# (block args, cin, cout, stride) -> nn.Module (imports torch when called)
ModuleFn = Callable[["BlockArgs", int, int, int], Any]


@dataclasses.dataclass(frozen=True)
class BlockType:
    name: str  # the arch-string prefix ("ir" in ir_r2_k3_s2_e6_c24)
    module: ModuleFn
    cost: CostFn
    description: str = ""


_BLOCKS: dict[str, BlockType] = {}


def register_block(block: BlockType) -> BlockType:
    if block.name in _BLOCKS:
        raise ValueError(f"block type {block.name!r} is already registered")
    if not block.name.isalpha() or not block.name.islower():
        raise ValueError(f"block type {block.name!r}: use lower-case letters (it starts a block string)")
    _BLOCKS[block.name] = block
    return block


def get_block(name: str) -> BlockType:
    return _BLOCKS[name]  # parse_block has already checked the name against block_names()


def block_names() -> tuple[str, ...]:
    return tuple(_BLOCKS)


# --------------------------------------------------------------------------- the built-in types


def _cn_module(b: BlockArgs, cin: int, cout: int, stride: int) -> Any:
    from edgecompress.students.blocks import ConvBnAct

    return ConvBnAct(cin, cout, b.kernel, stride, act=b.act)


def _cn_cost(em: CostEmitter, x: str, b: BlockArgs, cin: int, cout: int, h: int, w: int, s: int) -> tuple[str, int, int]:
    return em.conv_bn_act(x, cin, cout, h, w, b.kernel, s, 1, b.act)


def _ds_module(b: BlockArgs, cin: int, cout: int, stride: int) -> Any:
    from edgecompress.students.blocks import DepthwiseSeparable

    return DepthwiseSeparable(cin, cout, b.kernel, stride, b.act, b.se)


def _ir_module(b: BlockArgs, cin: int, cout: int, stride: int) -> Any:
    from edgecompress.students.blocks import InvertedResidual

    return InvertedResidual(cin, cout, b.kernel, stride, b.expand, b.act, b.se)


def _mobile_cost(em: CostEmitter, x: str, b: BlockArgs, cin: int, cout: int, h: int, w: int, s: int) -> tuple[str, int, int]:
    """ds and ir: (1x1 expand) -> depthwise -> (SE) -> 1x1 project, residual when the shape is kept."""
    mid = cin if b.type == "ds" else max(1, int(round(cin * b.expand)))
    y = em.conv_bn_act(x, cin, mid, h, w, 1, 1, 1, b.act)[0] if mid != cin else em.identity(x, (1, cin, h, w))
    y, h, w = em.conv_bn_act(y, mid, mid, h, w, b.kernel, s, mid, b.act)
    y = em.se(y, mid, h, w) if b.se else em.identity(y, (1, mid, h, w))
    y, h, w = em.conv_bn_act(y, mid, cout, h, w, 1, 1, 1, "")
    return (em.add(x, y, (1, cout, h, w)) if (s == 1 and cin == cout) else y), h, w


def _rb_module(b: BlockArgs, cin: int, cout: int, stride: int) -> Any:
    from edgecompress.students.blocks import BasicBlock

    return BasicBlock(cin, cout, b.kernel, stride, b.act, b.se)


def _rb_cost(em: CostEmitter, x: str, b: BlockArgs, cin: int, cout: int, h: int, w: int, s: int) -> tuple[str, int, int]:
    hi, wi = h, w
    y, h, w = em.conv_bn_act(x, cin, cout, h, w, b.kernel, s, 1, b.act)
    y, h, w = em.conv_bn_act(y, cout, cout, h, w, b.kernel, 1, 1, "")
    y = em.se(y, cout, h, w) if b.se else em.identity(y, (1, cout, h, w))
    sc = em.conv_bn_act(x, cin, cout, hi, wi, 1, s, 1, "")[0] if (s != 1 or cin != cout) else em.identity(x, (1, cin, hi, wi))
    return em.act(em.add(y, sc, (1, cout, h, w)), b.act, (1, cout, h, w), fusable=True), h, w


register_block(BlockType("cn", _cn_module, _cn_cost, "conv-bn-act (stem or 1x1 head)"))
register_block(BlockType("ds", _ds_module, _mobile_cost, "depthwise-separable (MobileNetV1)"))
register_block(BlockType("ir", _ir_module, _mobile_cost, "inverted residual (MobileNetV2/V3)"))
register_block(BlockType("rb", _rb_module, _rb_cost, "residual basic block (ResNet)"))
