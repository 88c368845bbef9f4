"""Student registry, arch strings, and structured pruning of teachers (residual + concat)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecompress.artifacts import StudentSpec
from edgecompress.errors import ConfigError
from edgecompress.students import create_student, list_students
from edgecompress.students.arch import format_arch, parse_arch
from edgecompress.students.families import TEST_MOBILENET, TEST_RESNET, mobilenet_arch, resnet_arch
from edgecompress.students.pruning import ChannelGraph, uniform_keep

torch.set_num_threads(1)
SHAPE = (3, 16, 16)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.sc: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.sc(x))


class ResNetLike(nn.Module):
    low_level_layer = "stem"

    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = nn.Sequential(_Block(16, 16, 1), _Block(16, 16, 1))
        self.layer2 = nn.Sequential(_Block(16, 32, 2), _Block(32, 32, 1))
        self.num_features = 32
        self.classifier = nn.Linear(32, nc)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(self.stem(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


class ConcatNet(nn.Module):
    """Two branches concatenated, then BN, a depthwise conv across the concat, a pointwise conv."""

    low_level_layer = "stem"

    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 24, 1)
        self.num_features = 24
        self.classifier = nn.Linear(24, nc)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        return nn.functional.adaptive_avg_pool2d(self.pw(self.dw(y)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def _randomize_bn(model: nn.Module) -> nn.Module:
    # Non-trivial BN statistics, so a wrong slice of them changes the outputs.
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_registry_lists_families() -> None:
    names = list_students()
    for n in ("mobilenet", "resnet", "pruned-teacher", "test_mobilenet", "test_resnet"):
        assert n in names
    assert not any(n.startswith("test_") for n in list_students(include_test=False))


@pytest.mark.parametrize("family,arch", [("test_mobilenet", TEST_MOBILENET), ("test_resnet", TEST_RESNET),
                                         ("mobilenet", mobilenet_arch((3, 16, 16), 1)), ("resnet", resnet_arch((3, 16, 16), 1))])
def test_spec_round_trip_and_contract(family: str, arch: str) -> None:
    spec = StudentSpec(family, arch, SHAPE, 7, width_mult=0.5)
    again = StudentSpec.from_json(spec.to_json())
    assert again == spec
    a, b = create_student(spec), create_student(again)
    b.load_state_dict(a.state_dict())  # identical structure from the JSON
    x = torch.randn(2, *SHAPE)
    a.eval()
    assert a(x).shape == (2, 7)
    feats = a.forward_features(x)
    assert feats.shape == (2, a.num_features)
    assert isinstance(a.classifier, nn.Linear) and a.classifier.in_features == a.num_features
    assert a.low_level_layer in dict(a.named_modules())


def test_arch_string_round_trip_and_errors() -> None:
    arch = "cn_r1_k3_s2_c16_arelu6-ds_r1_k5_s1_c16_se-ir_r2_k3_s2_e6_c24_se_ahs-rb_r2_k3_s1_c32"
    assert format_arch(parse_arch(arch)) == arch
    for bad, needle in [("xx_r1_c8", "must start with"), ("ir_r1_k4_s1_c8", "odd k"), ("ir_r1_q3", "unknown option"),
                        ("ir_r1_aswish_c8", "relu"), ("", "empty")]:
        with pytest.raises(ConfigError, match=needle):
            parse_arch(bad)
    with pytest.raises(ConfigError, match="unknown student family 'nope'"):
        create_student(StudentSpec("nope", TEST_RESNET, SHAPE, 10))


def test_width_multiplier_changes_size() -> None:
    small = create_student(StudentSpec("test_mobilenet", TEST_MOBILENET, SHAPE, 10, width_mult=0.5))
    big = create_student(StudentSpec("test_mobilenet", TEST_MOBILENET, SHAPE, 10, width_mult=2.0))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(big) > 2 * count(small)


@pytest.mark.parametrize("teacher_cls", [ResNetLike, ConcatNet])
def test_pruned_teacher_rebuilds_identically(teacher_cls: type[nn.Module]) -> None:
    teacher = _randomize_bn(teacher_cls())
    kept = uniform_keep(teacher, SHAPE, 0.5)
    spec = StudentSpec("pruned-teacher", "keep0.5", SHAPE, 10, extra={"kept": kept})
    pruned = create_student(spec, teacher)
    n_t = sum(p.numel() for p in teacher.parameters())
    n_p = sum(p.numel() for p in pruned.parameters())
    assert n_p < 0.6 * n_t
    x = torch.randn(3, *SHAPE)
    pruned.eval()
    assert pruned(x).shape == (3, 10)
    assert pruned.forward_features(x).shape == (3, pruned.num_features)
    # After "training", the state_dict loads into a rebuild from the JSON spec and a fresh teacher.
    rebuilt = create_student(StudentSpec.from_json(spec.to_json()), teacher_cls())
    rebuilt.load_state_dict(pruned.state_dict())
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(x), pruned(x))
    # Keeping everything is the teacher itself (same weights, same outputs).
    full = create_student(StudentSpec("pruned-teacher", "keep1", SHAPE, 10), teacher).eval()
    torch.testing.assert_close(full(x), teacher(x))


def test_pruning_respects_couplings() -> None:
    g = ChannelGraph(ResNetLike().eval(), SHAPE)
    groups = g.prunable()
    # The stem and both layer1 residual outputs are one group (the adds tie them); layer2's
    # projection shortcut and the classifier input are another; each block's inner conv is free.
    assert groups == {"stem.0": 16, "layer1.0.c1": 16, "layer1.1.c1": 16, "layer2.0.c1": 32, "layer2.0.c2": 32,
                      "layer2.1.c1": 32}
    c = ChannelGraph(ConcatNet().eval(), SHAPE).prunable()
    assert c == {"stem": 8, "a": 12, "b": 4, "pw": 24}  # the depthwise conv follows the concat's groups


def test_pruned_keeps_most_important_channels() -> None:
    teacher = ConcatNet().eval()
    with torch.no_grad():
        teacher.b.weight.zero_()
        teacher.b.weight[2] = 1.0  # the only filter of branch b that matters
    pruned = create_student(StudentSpec("pruned-teacher", "x", SHAPE, 10, extra={"kept": {"b": 1}}), teacher)
    torch.testing.assert_close(pruned.b.weight, teacher.b.weight[2:3])


def test_pruned_teacher_errors() -> None:
    with pytest.raises(ConfigError, match="pass teacher"):
        create_student(StudentSpec("pruned-teacher", "keep0.5", SHAPE, 10))
    with pytest.raises(ConfigError, match="does not have"):
        create_student(StudentSpec("pruned-teacher", "keep0.5", SHAPE, 10, extra={"kept": {"nope": 3}}), ResNetLike())
    with pytest.raises(ConfigError, match="must be in 1..16"):
        create_student(StudentSpec("pruned-teacher", "keep0.5", SHAPE, 10, extra={"kept": {"stem.0": 99}}), ResNetLike())
    with pytest.raises(ConfigError, match="keep<ratio>"):
        create_student(StudentSpec("pruned-teacher", "half", SHAPE, 10), ResNetLike())


def test_demo_teacher_prunes() -> None:
    demo = pytest.importorskip("edgecompress.distill.demo_teacher")
    teacher = demo.DemoTeacher(3, 10).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)  # a loaded teacher is frozen; its pruned copy must still train
    pruned = create_student(StudentSpec("pruned-teacher", "keep0.5", (3, 32, 32), 10), teacher).eval()
    assert pruned(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert pruned.num_features == pruned.classifier.in_features < teacher.num_features
    assert all(p.requires_grad for p in pruned.parameters())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_students_export_to_onnx_and_match(tmp_path: object) -> None:
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    spec = StudentSpec("test_mobilenet", TEST_MOBILENET, SHAPE, 10)
    model = create_student(spec).eval()
    path = f"{tmp_path}/m.onnx"
    x = torch.randn(1, *SHAPE)
    torch.onnx.export(model, (x,), path, opset_version=17, dynamo=False, input_names=["input"])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, model(x).detach().numpy(), atol=1e-4)
