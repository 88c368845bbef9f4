"""Cost model against hand-computed MACs, params, peak activation memory and file sizes."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from edgecompress.artifacts import CostEstimate, StudentSpec
from edgecompress.cost import estimate_cost, model_cost
from edgecompress.cost.arch_cost import arch_layer_costs
from edgecompress.cost.estimate import (
    FILE_OVERHEAD_BYTES,
    INT8_FRAMING,
    PER_KERNEL_OVERHEAD_BYTES,
    costs_from_layers,
    size_for,
    spec_cost,
)
from edgecompress.students import create_student

torch.set_num_threads(1)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


class Residual(nn.Module):
    def __init__(self, skip: bool) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.c2(self.c1(x))
        return z + x if self.skip else z * 2.0


def test_tiny_by_hand() -> None:
    c = model_cost(Tiny(), (3, 4, 4))
    # conv: 4 out ch x 4x4 positions x 3 in ch x 3x3 taps = 1728; fc: 4 x 2 = 8
    assert c.macs == 1728 + 8
    assert c.params == 108 + 8 + 10
    # Liveness: the input (48) and the conv output (64) are both alive while the conv runs;
    # BN and ReLU are folded/fused into the conv's buffer.
    assert c.peak_activation_elems == 48 + 64
    kernels = [(lc.op, lc.kernel) for lc in c.layers if lc.kernel]
    assert kernels == [("Conv2d", "conv"), ("AdaptiveAvgPool2d", "elem"), ("Linear", "fc")]
    # Files: weights 108 + 8, folded biases 4 + 2, three kernels of framing.
    frame = FILE_OVERHEAD_BYTES + 3 * PER_KERNEL_OVERHEAD_BYTES
    assert c.size_bytes["fp32"] == frame + 4 * (116 + 6)
    assert c.size_bytes["fp16"] == frame + 2 * (116 + 6)
    # int8 per format: its own framing per file / kernel / output channel; "int8" alone (format
    # unknown) is the larger of the two.
    for fmt, (per_file, per_kernel, per_channel) in INT8_FRAMING.items():
        assert c.size_bytes[f"int8@{fmt}"] == per_file + 3 * per_kernel + 116 + per_channel * 6
        assert size_for(c.size_bytes, "int8", fmt) == c.size_bytes[f"int8@{fmt}"]
    assert c.size_bytes["int8"] == max(c.size_bytes["int8@onnx"], c.size_bytes["int8@tflite"])
    assert size_for(c.size_bytes, "fp32", "tflite") == c.size_bytes["fp32"]
    est = estimate_cost(Tiny(), (3, 4, 4), precision="int8")
    assert isinstance(est, CostEstimate) and est.peak_activation_bytes == 112 and est.macs == 1736


def test_residual_keeps_input_alive() -> None:
    # 2x4x4 = 32 elements per tensor. Chain: x+y while c1 runs, y+z while c2 runs -> 64.
    # Residual: x stays alive until the add -> x+y+z = 96 while c2 runs.
    assert model_cost(Residual(skip=False), (2, 4, 4)).peak_activation_elems == 64
    assert model_cost(Residual(skip=True), (2, 4, 4)).peak_activation_elems == 96
    c = model_cost(Residual(skip=True), (2, 4, 4))
    assert c.macs == 2 * (2 * 16 * 2)
    assert c.params == 2 * (4 + 2)


def test_depthwise_and_concat() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
            self.pw = nn.Conv2d(4, 6, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.dw(x), self.pw(x)], 1)

    c = model_cost(Net(), (4, 4, 4))
    assert c.macs == 4 * 16 * 9 + 6 * 16 * 4
    assert c.features["dw_n"] == 1 and c.features["pw_n"] == 1 and c.features["elem_n"] == 1
    # While pw runs: x (64) + dw (64) + pw (96) = 224. x is dead after pw; while cat runs:
    # dw (64) + pw (96) + cat (160) = 320, the peak.
    assert c.peak_activation_elems == 64 + 96 + 160


def test_strided_conv_shapes() -> None:
    m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.MaxPool2d(2))
    c = model_cost(m, (3, 9, 9))
    assert c.layers[1].out_shape == (1, 8, 5, 5) and c.layers[2].out_shape == (1, 8, 2, 2)
    assert c.macs == 8 * 25 * 27


def _random_arch(rng: random.Random) -> str:
    blocks = ["cn_r1_k3_s2_c8" + rng.choice(["", "_ahs", "_arelu6"])]
    for _ in range(rng.randint(1, 4)):
        t = rng.choice(["ds", "ir", "rb", "cn"])
        s = f"{t}_r{rng.randint(1, 2)}_k{rng.choice([1, 3, 5])}_s{rng.choice([1, 2])}"
        if t == "ir":
            s += f"_e{rng.choice([1, 3, 6])}"
        s += f"_c{rng.choice([8, 12, 16, 24])}"
        if t != "cn" and rng.random() < 0.4:
            s += "_se"
        s += rng.choice(["", "_ahs", "_arelu6"])
        blocks.append(s)
    return "-".join(blocks)


def test_arch_fast_path_matches_traced_graph() -> None:
    rng = random.Random(0)
    for _ in range(12):
        arch, width = _random_arch(rng), rng.choice([0.3, 0.5, 1.0, 1.4])
        spec = StudentSpec("test_mobilenet", arch, (3, 16, 16), 5, width_mult=width)
        fast = costs_from_layers(arch_layer_costs(arch, width, (3, 16, 16), 5))
        traced = model_cost(create_student(spec), (3, 16, 16))
        assert (fast.macs, fast.params, fast.peak_activation_elems, fast.size_bytes, fast.features) == (
            traced.macs, traced.params, traced.peak_activation_elems, traced.size_bytes, traced.features), arch


def test_pruned_skeleton_costs_like_the_real_pruned_model() -> None:
    from tests.test_students import ResNetLike

    teacher = ResNetLike().eval()
    spec = StudentSpec("pruned-teacher", "keep0.5", (3, 16, 16), 10)
    fast = spec_cost(spec, teacher)
    real = model_cost(create_student(spec, teacher), (3, 16, 16))
    assert (fast.macs, fast.params, fast.peak_activation_elems) == (real.macs, real.params, real.peak_activation_elems)
    assert fast.macs < model_cost(teacher, (3, 16, 16)).macs


def test_untraceable_model_is_a_config_error() -> None:
    from edgecompress.errors import ConfigError

    class Dyn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(ConfigError, match="cannot be traced"):
        model_cost(Dyn(), (1, 4, 4))
