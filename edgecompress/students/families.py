"""The built-in student families and their search spaces.

- ``mobilenet``: MobileNetV2-style inverted residuals (ReLU6, expand 6) with a 1x1 head.
- ``resnet``: ResNet basic blocks, four stages.
- ``pruned-teacher``: the teacher with channels removed (Tang et al. 2019's setting).
- ``test_mobilenet`` / ``test_resnet``: a few thousand parameters, for tests.

Search spaces are depth (repeats per stage) x width multiplier. The number of stride-2 stages
follows the input size so the last feature map is about 4x4 whatever the resolution.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from edgecompress.artifacts import StudentSpec
from edgecompress.errors import ConfigError
from edgecompress.students.registry import Candidate, register_student

if TYPE_CHECKING:
    from torch import nn

# Width multipliers ~6% apart (geometric, 0.25 .. 2.0), so the largest candidate under a
# latency budget lands close to it (the budget-fit target is measured / budget in [0.85, 1.0]).
# Channel rounding to multiples of 8 merges neighbours at small widths; select deduplicates.
WIDTHS = tuple(round(0.25 * 1.06**i, 3) for i in range(36)) + (2.0,)
DEPTHS = (1, 2, 3)


def _strides(input_shape: tuple[int, int, int], order: list[int], n_slots: int) -> list[int]:
    """Stride per slot: stride 2 goes to the slots in ``order`` until the map is ~4x4."""
    n_down = max(0, min(len(order), int(round(math.log2(max(1, min(input_shape[1:])) / 4)))))
    s = [1] * n_slots
    for i in order[:n_down]:
        s[i] = 2
    return s


def mobilenet_arch(input_shape: tuple[int, int, int], depth: int = 2) -> str:
    # slots: stem, c16, c24, c32, c64, c96 ; downsample c24, c32, c64 first, then stem, then c96.
    s = _strides(input_shape, [2, 3, 4, 0, 5], 6)
    d = depth
    return (f"cn_r1_k3_s{s[0]}_c16_arelu6-ir_r1_k3_s{s[1]}_e1_c16_arelu6-ir_r{d}_k3_s{s[2]}_e6_c24_arelu6-"
            f"ir_r{d}_k3_s{s[3]}_e6_c32_arelu6-ir_r{d}_k3_s{s[4]}_e6_c64_arelu6-ir_r{max(1, d - 1)}_k3_s{s[5]}_e6_c96_arelu6-"
            "cn_r1_k1_s1_c256_arelu6")


def resnet_arch(input_shape: tuple[int, int, int], depth: int = 2) -> str:
    # slots: stem, c16, c32, c64, c128 ; downsample c32, c64, c128, then stem.
    s = _strides(input_shape, [2, 3, 4, 0], 5)
    d = depth
    return (f"cn_r1_k3_s{s[0]}_c16-rb_r{d}_k3_s{s[1]}_c16-rb_r{d}_k3_s{s[2]}_c32-"
            f"rb_r{d}_k3_s{s[3]}_c64-rb_r{max(1, d - 1)}_k3_s{s[4]}_c128")


def _depth_width(arch: str, width: float) -> str:
    """``d2 w0.5``: the deepest stage's repeats and the width multiplier."""
    from edgecompress.students.arch import parse_arch

    return f"d{max(b.repeats for b in parse_arch(arch))} w{width:g}"


def _grid(arch_fn: Any) -> Any:
    def space(input_shape: tuple[int, int, int], teacher: nn.Module | None) -> list[Candidate]:
        return [(arch_fn(input_shape, d), w, {}) for d in DEPTHS for w in WIDTHS]

    return space


def _blocknet(spec: StudentSpec, teacher: nn.Module | None) -> nn.Module:
    from edgecompress.students.blocknet import BlockNet

    return BlockNet(spec.arch, spec.num_classes, in_chans=spec.input_shape[0], width_mult=spec.width_mult)


TEST_MOBILENET = "cn_r1_k3_s2_c8-ir_r1_k3_s2_e2_c8-ir_r1_k3_s2_e2_c16_se_ahs"
TEST_RESNET = "cn_r1_k3_s2_c8-rb_r1_k3_s1_c8-rb_r1_k3_s2_c16"


def _tiny(arch: str) -> Any:
    def space(input_shape: tuple[int, int, int], teacher: nn.Module | None) -> list[Candidate]:
        return [(arch, w, {}) for w in (0.5, 1.0, 2.0)]

    return space


# The arch-string families all build a BlockNet; they differ only in their search space.
for _name, _space, _doc in (
    ("mobilenet", _grid(mobilenet_arch), "MobileNetV2-style inverted residuals (ReLU6, SE optional per block) + 1x1 head."),
    ("resnet", _grid(resnet_arch), "ResNet basic blocks in four stages."),
    ("test_mobilenet", _tiny(TEST_MOBILENET), "Tiny inverted-residual net for tests (any arch string works)."),
    ("test_resnet", _tiny(TEST_RESNET), "Tiny residual net for tests."),
):
    register_student(_name, search_space=_space, description=_doc, arch_cost=True, label=_depth_width)(_blocknet)


# A student is strictly smaller than its teacher: keep 1.0 would be the teacher itself, and
# distilling a network into its own copy compresses nothing. Ratios ~6% apart (MACs ~12%), from
# 0.1 (~100x fewer MACs) to 0.9, so the largest candidate under a compression target or a
# budget lands close to it; select drops ratios that round to the same channel counts.
KEEP_RATIOS = tuple(round(0.1 * 1.06**i, 3) for i in range(38))


def pruned_arch(ratio: float) -> str:
    return f"keep{ratio:g}"


def _pruned_space(input_shape: tuple[int, int, int], teacher: nn.Module | None) -> list[Candidate]:
    if teacher is None:
        return []
    from edgecompress.students.pruning import channel_graph, keep_counts

    groups = channel_graph(teacher, input_shape).prunable()
    return [(pruned_arch(r), 1.0, {"kept": keep_counts(groups, r)}) for r in KEEP_RATIOS]


def _kept(spec: StudentSpec, teacher: nn.Module) -> dict[str, int]:
    from edgecompress.students.pruning import uniform_keep

    kept = spec.kept
    if kept is None:
        try:
            ratio = float(spec.arch.removeprefix("keep"))
        except ValueError:
            raise ConfigError(f"spec.arch: {spec.arch!r} for pruned-teacher must be 'keep<ratio>', e.g. keep0.5") from None
        kept = uniform_keep(teacher, spec.input_shape, ratio)
    if not isinstance(kept, dict) or not all(isinstance(v, int) for v in kept.values()):
        raise ConfigError("spec.kept: must map group names to integer channel counts")
    return kept


def _prune(spec: StudentSpec, teacher: nn.Module | None, weights: bool) -> nn.Module:
    from edgecompress.students.pruning import prune_model

    assert teacher is not None  # checked by create_student
    was_training = teacher.training
    teacher.eval()  # shape propagation must not update BN statistics
    try:
        model = prune_model(teacher, spec.input_shape, _kept(spec, teacher), weights=weights)
    finally:
        teacher.train(was_training)
    # A loaded teacher is usually frozen; the student copied from it must train.
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _pruned_skeleton(spec: StudentSpec, teacher: nn.Module | None = None) -> nn.Module:
    return _prune(spec, teacher, weights=False)


@register_student("pruned-teacher", search_space=_pruned_space, needs_teacher=True, skeleton=_pruned_skeleton,
                  label=lambda arch, _width: arch)
def pruned_teacher(spec: StudentSpec, teacher: nn.Module | None = None) -> nn.Module:
    """The teacher, channel-pruned per spec.kept (or uniformly by the arch's keep ratio), weights inherited."""
    return _prune(spec, teacher, weights=True)
