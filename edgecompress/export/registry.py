"""One provider per export target, in a registry keyed by (format, precision).

Adding a target is one decorated function (torchao / ExecuTorch style), never another branch
in an if/elif chain::

    @register_recipe("onnx", "fp16", filename="model_fp16.onnx", numeric="float16")
    def _onnx_fp16(ctx: ExportContext) -> Built: ...

A provider receives the shared :class:`~edgecompress.export.context.ExportContext` (which
memoizes the expensive shared steps: the fp32 ONNX graph, the single onnx2tf run) and returns
the path of the file it built inside the context's work directory. Parity, the manifest and
the atomic move into the output folder are done once, by the caller, for every provider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecompress.errors import ExportError

if TYPE_CHECKING:
    from edgecompress.export.context import ExportContext

# User-facing precision -> the precision a format actually implements, where they differ.
# TFLite "int8" is full-integer int8 (int8 weights, activations and I/O): what a phone NPU or
# XNNPACK's int8 kernels run.
ALIASES: dict[tuple[str, str], str] = {("tflite", "int8"): "full-int8"}

# Why a combination has no recipe, where that is a decision rather than an omission.
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("onnx", "dynamic-int8"): (
        "quantize_dynamic emits ConvInteger nodes that ONNX Runtime 1.23 cannot run (and later ones run "
        "~13x slower than fp32); use int8 (static QDQ)"
    ),
    ("onnx", "full-int8"): "ONNX int8 is static QDQ with float I/O; ask for int8",
}


@dataclasses.dataclass(frozen=True)
class Built:
    """What a provider made: the file (in the work dir), the converter log, if any, and the
    quantization settings it used (recorded in the manifest's attempts when int8 is tuned)."""

    path: Path
    log: Path | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Recipe:
    format: str
    precision: str  # canonical: fp32 | fp16 | int8 | dynamic-int8 | full-int8
    filename: str
    numeric: str  # float32 | float16 | int8: which parity rules apply
    build: Callable[[ExportContext], Built]

    @property
    def key(self) -> tuple[str, str]:
        return (self.format, self.precision)


_RECIPES: dict[tuple[str, str], Recipe] = {}


def register_recipe(
    fmt: str, precision: str, *, filename: str, numeric: str
) -> Callable[[Callable[[ExportContext], Built]], Callable[[ExportContext], Built]]:
    """Register ``fn`` as the provider of (``fmt``, ``precision``)."""

    def deco(fn: Callable[[ExportContext], Built]) -> Callable[[ExportContext], Built]:
        key = (fmt, precision)
        if key in _RECIPES:
            raise ValueError(f"export recipe {key} registered twice")
        _RECIPES[key] = Recipe(fmt, precision, filename, numeric, fn)
        return fn

    return deco


def _load_providers() -> None:
    # The providers register themselves on import; importing here keeps the registry complete
    # whichever module a caller imported first.
    from edgecompress.export import onnx_quant, onnx_recipes, tflite_quant, tflite_recipes  # noqa: F401


def list_recipes() -> list[tuple[str, str]]:
    _load_providers()
    return sorted(_RECIPES)


def resolve(formats: tuple[str, ...], precisions: tuple[str, ...]) -> list[Recipe]:
    """The recipes for every format x precision, in a stable order; unknown pairs fail early."""
    _load_providers()
    out: list[Recipe] = []
    for fmt in formats:
        for prec in precisions:
            key = (fmt, ALIASES.get((fmt, prec), prec))
            if key in UNSUPPORTED:
                raise ExportError(f"export: precision {prec!r} is not available for {fmt}: {UNSUPPORTED[key]}")
            if key not in _RECIPES:
                allowed = ", ".join(p for f, p in sorted(_RECIPES) if f == fmt)
                raise ExportError(f"export: precision {prec!r} is not available for {fmt} (allowed: {allowed})")
            recipe = _RECIPES[key]
            if recipe not in out:
                out.append(recipe)
    return out
