"""The student registry: ``@register_student``, ``create_student(spec)``, ``list_students()``.

A family is a builder ``(spec, teacher) -> nn.Module`` plus the search space ``select`` walks:
``search_space(input_shape, teacher) -> [(arch, width_mult, extra), ...]``, and what the rest of
the pipeline asks of it: ``needs_teacher`` (built from the teacher: offered first when a teacher
is prunable), ``arch_cost`` (its arch string is a BlockNet block string, so the cost model can
cost it without building it; otherwise the built skeleton is traced) and ``label`` (how a
candidate reads in tables). Adding a family is one decorated function in one file, never an
if/elif elsewhere (the timm / torchao pattern).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgecompress.artifacts import StudentSpec
from edgecompress.errors import ConfigError

if TYPE_CHECKING:  # torch is imported lazily by the families themselves
    from torch import nn

Builder = Callable[[StudentSpec, "nn.Module | None"], "nn.Module"]
Candidate = tuple[str, float, dict[str, Any]]  # (arch, width_mult, extra)
SearchSpace = Callable[[tuple[int, int, int], "nn.Module | None"], list[Candidate]]


@dataclasses.dataclass(frozen=True)
class StudentFamily:
    name: str
    build: Builder
    search_space: SearchSpace | None = None
    needs_teacher: bool = False
    description: str = ""
    # Optional: the same structure without weights (meta device), for fast costing.
    skeleton: Builder | None = None
    arch_cost: bool = False  # the arch is a BlockNet block string (costed from the string alone)
    label: Callable[[str, float], str] | None = None  # (arch, width_mult) -> a short table label

    def label_of(self, arch: str, width_mult: float) -> str:
        return self.label(arch, width_mult) if self.label is not None else f"{arch} w{width_mult:g}"


_REGISTRY: dict[str, StudentFamily] = {}


def register_student(
    name: str, *, search_space: SearchSpace | None = None, needs_teacher: bool = False, description: str = "",
    skeleton: Builder | None = None, arch_cost: bool = False, label: Callable[[str, float], str] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(spec, teacher) -> nn.Module`` as student family ``name``."""

    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"student family {name!r} is already registered")
        _REGISTRY[name] = StudentFamily(name, fn, search_space, needs_teacher, description or (fn.__doc__ or "").strip(),
                                        skeleton, arch_cost, label)
        return fn

    return deco


def _ensure_loaded() -> None:
    # The built-in families register themselves on import.
    from edgecompress.students import families  # noqa: F401


def get_family(name: str) -> StudentFamily:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"spec.family: unknown student family {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def list_students(include_test: bool = True) -> list[str]:
    """Registered family names, sorted; ``include_test=False`` hides the tiny ``test_*`` variants."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if include_test or not n.startswith("test_"))


def create_student(spec: StudentSpec, teacher: nn.Module | None = None, *, skeleton: bool = False) -> nn.Module:
    """Build the (untrained, or teacher-initialised for ``pruned-teacher``) student for ``spec``.

    ``skeleton=True`` may return the structure only (meta device) when the family can: for costing.
    """
    fam = get_family(spec.family)
    if spec.num_classes < 1:
        raise ConfigError(f"spec.num_classes: {spec.num_classes} must be >= 1")
    if len(spec.input_shape) != 3 or min(spec.input_shape) < 1:
        raise ConfigError(f"spec.input_shape: {spec.input_shape} must be (C, H, W) with positive sizes")
    if not 0 < spec.width_mult <= 8:
        raise ConfigError(f"spec.width_mult: {spec.width_mult} must be in (0, 8]")
    if fam.needs_teacher and teacher is None:
        raise ConfigError(f"spec.family: {spec.family!r} is built from the teacher; pass teacher=")
    if skeleton and fam.skeleton is not None:
        return fam.skeleton(spec, teacher)
    return fam.build(spec, teacher)
