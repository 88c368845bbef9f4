"""The loss term is the unit of distillation: one registered declaration says everything the
trainer, the preflight checks, the config and the CLI need to know about it.

    @register_loss("kd", needs=("teacher",))
    def kd_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor: ...

A term declares

* ``needs``: the data it reads -- ``labels`` (cross-entropy on labeled rows), ``teacher``
  (teacher logits), ``teacher_embedding``, ``unlabeled`` (the unlabeled stream), ``low_level``
  (the student's early feature map). The config refuses a term whose labels are switched off,
  preflight refuses a missing teacher / embedding / unlabeled stream, and the trainer runs
  the teacher or hooks the early map only when an active term needs it;
* ``helpers``: the trainable modules it owns (adapters, discriminators), built from the run's
  widths and trained with the student (``side="student"``) or by the discriminator optimizer
  (``side="disc"``); a helper name shared by two terms is built once;
* ``disc_loss``: its discriminator step, if it has one (run on detached features).

A new term is one file: a decorated function. ``DistillConfig(loss_weights={"name": w})``
switches it on for any method (``method`` presets only choose default weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from edgecompress.distill.config import DistillConfig
    from edgecompress.distill.discriminators import DistillParts

NEEDS = ("labels", "teacher", "teacher_embedding", "unlabeled", "low_level")


@dataclasses.dataclass
class Mix:
    perm: torch.Tensor  # partner row of every row
    lam: torch.Tensor  # weight of the row's own image, per row


@dataclasses.dataclass
class StepTensors:
    """What one forward pass of student and teacher produced for one batch.

    Row layout: the first ``n_labeled`` rows come from the labeled stream, the rest from the
    unlabeled stream. Teacher-mimicking terms use all rows; cross-entropy only the labeled ones.
    """

    s_logits: torch.Tensor
    s_emb: torch.Tensor
    s_low: torch.Tensor | None  # early student feature map (alignment)
    t_logits: torch.Tensor | None
    t_emb: torch.Tensor | None
    y: torch.Tensor | None  # labels of the first n_labeled rows
    n_labeled: int
    mix: Mix | None = None  # the batch was mixed: row i = lam_i * x_i + (1 - lam_i) * x_perm[i]


@dataclasses.dataclass(frozen=True)
class Widths:
    """What helpers are sized from: embedding widths and the early map's channels."""

    student_dim: int
    teacher_dim: int | None  # the teacher's embedding width, or its logits' when it has none
    teacher_embedding: bool
    low_channels: int | None


@dataclasses.dataclass(frozen=True)
class Helper:
    name: str  # attribute of DistillParts, and the key prefix in saved training states
    side: str  # "student": trained with the student; "disc": by the discriminator optimizer
    build: Callable[[Widths], nn.Module | None]


LossFn = Callable[[StepTensors, "DistillParts", "DistillConfig"], torch.Tensor]
DiscFn = Callable[[StepTensors, "DistillParts", "DistillConfig"], "torch.Tensor | None"]


@dataclasses.dataclass(frozen=True)
class LossTerm:
    name: str
    fn: LossFn
    needs: frozenset[str]
    helpers: tuple[Helper, ...]
    disc_loss: DiscFn | None
    help: str

    def __call__(self, t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
        return self.fn(t, parts, cfg)


LOSSES: dict[str, LossTerm] = {}


def register_loss(
    name: str, *, needs: tuple[str, ...] = (), helpers: tuple[Helper, ...] = (), disc_loss: DiscFn | None = None,
    help: str = "",
) -> Callable[[LossFn], LossFn]:
    """Register a loss term (see the module docstring). A second term of the same name is an
    error, not a silent replacement."""
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise ValueError(f"loss term {name!r}: unknown needs {unknown} (allowed: {', '.join(NEEDS)})")
    for h in helpers:
        if h.side not in ("student", "disc"):
            raise ValueError(f"loss term {name!r}: helper {h.name!r} side must be 'student' or 'disc'")

    def deco(fn: LossFn) -> LossFn:
        if name in LOSSES:
            raise ValueError(f"loss term {name!r} is already registered (by {LOSSES[name].fn.__module__})")
        LOSSES[name] = LossTerm(name, fn, frozenset(needs), tuple(helpers), disc_loss, help or (fn.__doc__ or "").strip())
        return fn

    return deco


def loss_terms() -> dict[str, LossTerm]:
    """Every registered term, the built-in ones included (in registration order)."""
    import edgecompress.distill.losses  # noqa: F401  (registers the built-in terms)

    return LOSSES


def needing(names: Any, need: str) -> list[str]:
    """The terms among ``names`` that declare ``need``."""
    terms = loss_terms()
    return [n for n in names if need in terms[n].needs]
