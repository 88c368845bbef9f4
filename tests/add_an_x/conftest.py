"""Each toy registers itself when its file is imported, exactly as a contributor's file would;
the fixture imports it fresh for one test and then restores every registry, so no toy leaks
into the rest of the suite (error messages there list the registered names)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest


def _registries() -> list[dict]:  # type: ignore[type-arg]
    from edgecompress.distill.loss_registry import LOSSES, loss_terms
    from edgecompress.export import formats, registry
    from edgecompress.students import registry as students

    loss_terms()
    registry.list_recipes()
    students.list_students()
    import edgecompress.runners as runners
    import edgecompress.runtimes as runtimes

    return [LOSSES, formats._FORMATS, registry._RECIPES, students._REGISTRY, runtimes._RUNTIMES, runners._RUNNERS]


@pytest.fixture()
def toy() -> Iterator[Callable[[str], ModuleType]]:
    saved = [(reg, dict(reg)) for reg in _registries()]
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        module = f"tests.add_an_x.{name}"
        sys.modules.pop(module, None)
        loaded.append(module)
        return importlib.import_module(module)

    yield load
    for reg, before in saved:
        reg.clear()
        reg.update(before)
    for module in loaded:
        sys.modules.pop(module, None)
