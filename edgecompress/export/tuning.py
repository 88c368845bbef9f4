"""Accuracy-aware int8: when plain PTQ misses the parity gate, try better settings in order.

Intel Neural Compressor's idea (tune PTQ against an accuracy criterion, falling back op by op)
with this project's gate as the criterion. Each int8 target may register one *tuner*: a
function that proposes rebuilt artifacts, cheapest change first (better calibration, then
layers kept in float), and stops as soon as one passes or its cost bound is reached::

    @register_tuner("onnx", "int8")
    def _tune_onnx(ctx: ExportContext, trial: Trial) -> None:
        trial.run("calibration", "entropy ranges, 1024 images", {...}, lambda: Built(...))

The :class:`Trial` runs each proposal through the same runtime and comparison as the gate,
records a :class:`~edgecompress.artifacts.QuantAttempt` for it, and keeps the best one. What
the export writes is that best attempt (if it passes); the manifest lists every attempt.

The search reads the parity numbers of each attempt, so the gate set is also the tuning
criterion (as in INC); the sensitivity ranking itself uses calibration images only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgecompress.artifacts import ParityReport, QuantAttempt
from edgecompress.errors import ExportError

if TYPE_CHECKING:
    from edgecompress.export.context import ExportContext
    from edgecompress.export.registry import Built, Recipe

Evaluate = Callable[[Path], ParityReport]
Tuner = Callable[["ExportContext", "Trial"], None]
# Builds the int8 file from a quantization-aware fine-tune; the dict holds the PTQ settings to
# start from (the tuner's best so far), None for the recipe's own defaults.
QatBuilder = Callable[["ExportContext", "dict[str, Any] | None"], "Built"]

_TUNERS: dict[tuple[str, str], Tuner] = {}
_QAT: dict[tuple[str, str], QatBuilder] = {}


F = TypeVar("F", bound=Callable[..., Any])


def _registrar(table: dict[tuple[str, str], F], what: str, fmt: str, precision: str) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        if (fmt, precision) in table:
            raise ValueError(f"export {what} {(fmt, precision)} registered twice")
        table[(fmt, precision)] = fn
        return fn

    return deco


def register_tuner(fmt: str, precision: str) -> Callable[[Tuner], Tuner]:
    """Register ``fn`` as the accuracy-aware fallback of the (``fmt``, ``precision``) recipe."""
    return _registrar(_TUNERS, "tuner", fmt, precision)


def register_qat(fmt: str, precision: str) -> Callable[[QatBuilder], QatBuilder]:
    """Register ``fn`` as the QAT build of the (``fmt``, ``precision``) recipe: used by that
    format's tuner as its last step and, with ``ExportConfig(qat=True)``, on its own."""
    return _registrar(_QAT, "QAT builder", fmt, precision)


def qat_build(ctx: ExportContext, recipe_key: tuple[str, str], base: dict[str, Any] | None = None) -> Built:
    return _QAT[recipe_key](ctx, base)


def _rank(parity: ParityReport, size: int) -> tuple[bool, float, float, int]:
    # Passing first; then the one closest to the float model; then the smaller file.
    return (parity.passed, parity.top1_agreement, parity.acc_delta_pt, -size)


@dataclasses.dataclass
class Trial:
    """Runs proposals through the gate's own evaluation and keeps the record."""

    evaluate: Evaluate
    attempts: list[QuantAttempt] = dataclasses.field(default_factory=list)
    best: tuple[Built, ParityReport] | None = None
    best_index: int = -1

    @property
    def passed(self) -> bool:
        return self.best is not None and self.best[1].passed

    @property
    def best_settings(self) -> dict[str, Any]:
        """Settings of the best attempt so far (later steps build on them)."""
        ranked = max((a for a in self.attempts if a.error is None),
                     key=lambda a: (a.passed, a.top1_agreement, a.acc_delta_pt, -a.size_bytes))
        return dict(ranked.settings)

    def record(self, step: str, description: str, settings: dict[str, Any], built: Built, parity: ParityReport,
               seconds: float, float_share: float = 0.0) -> ParityReport:
        size = built.path.stat().st_size
        self.attempts.append(QuantAttempt(
            step=step, description=description, settings=settings, top1_agreement=parity.top1_agreement,
            acc_delta_pt=parity.acc_delta_pt, max_abs_diff=parity.max_abs_diff, size_bytes=size,
            passed=parity.passed, float_share=round(float_share, 4), seconds=round(seconds, 3),
        ))
        if self.best is None or _rank(parity, size) > _rank(self.best[1], self.best[0].path.stat().st_size):
            self.best, self.best_index = (built, parity), len(self.attempts) - 1
        return parity

    def run(self, step: str, description: str, settings: dict[str, Any], build: Callable[[], Built],
            float_share: float = 0.0) -> ParityReport | None:
        """Build one proposal, check it like the gate does, record it. A proposal the converter
        or runtime rejects is recorded with its error and does not end the search."""
        t0 = time.perf_counter()
        try:
            built = build()
            parity = self.evaluate(built.path)
        except ExportError as exc:
            self.attempts.append(QuantAttempt(
                step=step, description=description, settings=settings, top1_agreement=0.0, acc_delta_pt=0.0,
                max_abs_diff=None, size_bytes=0, passed=False, float_share=round(float_share, 4),
                seconds=round(time.perf_counter() - t0, 3), error=str(exc)))
            return None
        # The build knows its own settings (method, images, float nodes); the step adds context.
        merged = {**built.settings, **settings}
        return self.record(step, description, merged, built, parity, time.perf_counter() - t0, float_share)


def has_tuner(recipe: Recipe) -> bool:
    return recipe.key in _TUNERS


def has_qat(recipe: Recipe) -> bool:
    return recipe.key in _QAT


def qat_only(recipe: Recipe, ctx: ExportContext, evaluate: Evaluate) -> tuple[Built, ParityReport, tuple[QuantAttempt, ...]]:
    """``ExportConfig(qat=True)``: the int8 file comes from a QAT fine-tune, no PTQ attempt first."""
    trial = Trial(evaluate)
    desc = f"quantization-aware fine-tune, {ctx.config.qat_steps} steps (asked for: qat=True)"
    trial.run("qat", desc, {}, lambda: qat_build(ctx, recipe.key))
    if trial.best is None:  # the QAT build itself failed: its error is the export's error
        raise ExportError(trial.attempts[-1].error or "export: QAT build failed")
    built, parity = trial.best
    return built, parity, (dataclasses.replace(trial.attempts[0], chosen=True),)


def tune(
    recipe: Recipe, ctx: ExportContext, first: Built, first_parity: ParityReport, first_s: float, evaluate: Evaluate
) -> tuple[Built, ParityReport, tuple[QuantAttempt, ...]]:
    """Plain PTQ missed the gate: run the recipe's tuner; return the best attempt and all of them."""
    trial = Trial(evaluate)
    trial.record("ptq", "plain post-training quantization", dict(first.settings), first, first_parity, first_s)
    _TUNERS[recipe.key](ctx, trial)
    assert trial.best is not None
    built, parity = trial.best
    attempts = list(trial.attempts)
    attempts[trial.best_index] = dataclasses.replace(attempts[trial.best_index], chosen=True)
    return built, parity, tuple(attempts)
