"""A toy student family not built from block strings: the whole change is this file."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgecompress.artifacts import StudentSpec
from edgecompress.students import register_student


def _space(input_shape: tuple[int, int, int], teacher: nn.Module | None) -> list[tuple[str, float, dict[str, Any]]]:
    return [(f"hidden{h}", 1.0, {}) for h in (8, 16, 32)]


@register_student("toy-mlp", search_space=_space, label=lambda arch, _w: arch.replace("hidden", "h"))
def toy_mlp(spec: StudentSpec, teacher: nn.Module | None = None) -> nn.Module:
    """Pool to 4x4, one hidden layer: costed by tracing the built model, like any non-block family."""
    hidden = int(spec.arch.removeprefix("hidden"))
    c = spec.input_shape[0]
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c * 16, hidden), nn.ReLU(),
                         nn.Linear(hidden, spec.num_classes))
