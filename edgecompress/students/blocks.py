"""Export-friendly building blocks: conv-bn-act, depthwise-separable, inverted residual, SE, basic block.

Every op here has a direct ONNX opset-17 equivalent and a TFLite builtin after onnx2tf (Conv,
depthwise Conv, Add, Mul, Relu/Clip/HardSwish, Sigmoid, GlobalAveragePool), so any student
built from them exports and converts without custom ops. BatchNorm follows every conv so the
exporter can fold it.
"""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hs": nn.Hardswish}


def make_act(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation (or none when ``act`` is empty)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(make_act(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-excite with 1x1 convs and a sigmoid gate (MobileNetV3 style, reduce to 1/4)."""

    def __init__(self, channels: int, reduce: float = 0.25) -> None:
        super().__init__()
        mid = max(8, int(channels * reduce))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * s


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk -> (SE) -> pointwise 1x1; residual when shape is kept (MobileNetV1/EfficientNet ds)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, act: str, se: bool) -> None:
        super().__init__()
        self.dw = ConvBnAct(cin, cin, k, stride, groups=cin, act=act)
        self.se = SqueezeExcite(cin) if se else nn.Identity()
        self.pw = ConvBnAct(cin, cout, 1, 1, act="")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y


class InvertedResidual(nn.Module):
    """1x1 expand -> depthwise kxk -> (SE) -> 1x1 linear project; residual when shape is kept (MobileNetV2)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: float, act: str, se: bool) -> None:
        super().__init__()
        mid = max(1, int(round(cin * expand)))
        self.expand = ConvBnAct(cin, mid, 1, 1, act=act) if mid != cin else nn.Identity()
        self.dw = ConvBnAct(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBnAct(mid, cout, 1, 1, act="")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class BasicBlock(nn.Module):
    """ResNet basic block: two kxk conv-bn, identity or 1x1 projection shortcut, act after the add."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, act: str, se: bool) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(cin, cout, k, stride, act=act)
        self.conv2 = ConvBnAct(cout, cout, k, 1, act="")
        self.se = SqueezeExcite(cout) if se else nn.Identity()
        self.shortcut = ConvBnAct(cin, cout, 1, stride, act="") if (stride != 1 or cin != cout) else nn.Identity()
        self.act = make_act(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))
