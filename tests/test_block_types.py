"""A block type is one registered definition: BlockNet builds its module, the arch fast path
emits its costs, and the two agree (checked against the traced module, the reference)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgecompress.artifacts import StudentSpec
from edgecompress.cost import model_cost
from edgecompress.cost.arch_cost import arch_layer_costs
from edgecompress.cost.estimate import costs_from_layers
from edgecompress.errors import ConfigError
from edgecompress.students import block_types, create_student
from edgecompress.students.arch import parse_arch


@pytest.fixture()
def double_conv() -> Iterator[None]:
    """A toy block type: two conv-bn-act, the first one strided (VGG style)."""

    def module(b, cin, cout, stride):  # type: ignore[no-untyped-def]
        from torch import nn

        from edgecompress.students.blocks import ConvBnAct

        return nn.Sequential(ConvBnAct(cin, cout, b.kernel, stride, act=b.act), ConvBnAct(cout, cout, b.kernel, 1, act=b.act))

    def cost(em, x, b, cin, cout, h, w, s):  # type: ignore[no-untyped-def]
        x, h, w = em.conv_bn_act(x, cin, cout, h, w, b.kernel, s, 1, b.act)
        return em.conv_bn_act(x, cout, cout, h, w, b.kernel, 1, 1, b.act)

    block_types.register_block(block_types.BlockType("dc", module, cost, "double conv (test)"))
    try:
        yield
    finally:
        block_types._BLOCKS.pop("dc")


def test_a_registered_block_type_builds_and_costs_alike(double_conv: None) -> None:
    for arch in ("cn_r1_k3_s1_c8-dc_r2_k3_s2_c16", "dc_r1_k5_s2_c12_ahs-ir_r1_k3_s1_e2_c12"):
        spec = StudentSpec("test_mobilenet", arch, (3, 16, 16), 5, width_mult=1.0)
        fast = costs_from_layers(arch_layer_costs(arch, 1.0, (3, 16, 16), 5))
        traced = model_cost(create_student(spec), (3, 16, 16))
        assert (fast.macs, fast.params, fast.peak_activation_elems, fast.features) == (
            traced.macs, traced.params, traced.peak_activation_elems, traced.features), arch


def test_an_unregistered_block_type_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"block 'dc_r1_c8' must start with one of cn, ds, ir, rb"):
        parse_arch("dc_r1_c8")
    with pytest.raises(ValueError, match="already registered"):
        block_types.register_block(block_types.BlockType("ir", lambda *a: None, lambda *a: ("", 0, 0)))
