"""Setting up a run: the ``Run`` bag, optimizers, schedule, discriminator widths, data streams.

Kept apart from :mod:`trainer` so that the loop there reads as the algorithm only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from edgecompress import serde
from edgecompress.artifacts import StudentSpec
from edgecompress.distill import distributed as D
from edgecompress.distill.config import DistillConfig, Optimizer
from edgecompress.distill.discriminators import DistillParts
from edgecompress.distill.loss_registry import Widths, loss_terms, needing
from edgecompress.distill.streams import Streams, mix_seed
from edgecompress.distill.student_taps import classifier_name, low_level_name
from edgecompress.distill.teacher import Teacher
from edgecompress.errors import DistillError


@dataclasses.dataclass
class Run:
    """Everything one training run holds; a plain bag so the step functions stay readable."""

    cfg: DistillConfig
    student: nn.Module
    teacher: Teacher | None
    parts: DistillParts
    opt: torch.optim.Optimizer
    disc_opt: torch.optim.Optimizer | None
    sched: torch.optim.lr_scheduler.LambdaLR
    weights: dict[str, float]
    dist: D.DistInfo
    feature_module: nn.Module  # whose *input* is the student embedding (the classifier) ...
    feature_is_output: bool  # ... or whose *output* is, when student_feature names a module
    low_module: nn.Module | None
    device: torch.device


# --------------------------------------------------------------------------- set-up


def student_forward(run: Run, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Student logits, embedding and early feature map from ONE forward pass (forward hooks)."""
    got: dict[str, torch.Tensor] = {}

    def emb_hook(_m: nn.Module, inp: Any, out: Any) -> None:
        got["emb"] = out if run.feature_is_output else inp[0]

    def low_hook(_m: nn.Module, _inp: Any, out: Any) -> None:
        got["low"] = out

    handles = [run.feature_module.register_forward_hook(emb_hook)]
    if run.low_module is not None:
        handles.append(run.low_module.register_forward_hook(low_hook))
    try:
        logits = run.student(x)
    finally:
        for h in handles:
            h.remove()
    emb = got["emb"]
    if emb.dim() == 4 and not run.feature_is_output:  # a 1x1 conv head: its input map, pooled
        emb = emb.mean((2, 3))
    return logits, torch.flatten(emb, 1), got.get("low")


def student_params(run: Run) -> list[nn.Parameter]:
    return [p for p in run.student.parameters() if p.requires_grad] + run.parts.student_side()


def _lr_lambda(total: int, warmup: int) -> Any:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def build_run(teacher: Teacher | None, student: nn.Module, cfg: DistillConfig, probe: Any, steps: int, dist: D.DistInfo, device: torch.device) -> Run:
    weights = cfg.weights()
    feature_is_output = cfg.student_feature is not None
    modules = dict(student.named_modules())
    feature_module = modules[cfg.student_feature if feature_is_output else classifier_name(student)]  # type: ignore[index]
    terms = [loss_terms()[name] for name in weights]
    low_module = modules[low_level_name(student)] if needing(weights, "low_level") else None  # type: ignore[index]
    run = Run(cfg, student, teacher, DistillParts(), None, None, None, weights, dist,  # type: ignore[arg-type]
              feature_module, feature_is_output, low_module, device)
    # One dry forward tells the widths the adapters and discriminators need.
    with torch.no_grad():
        student.eval()
        _, s_emb, s_low = student_forward(run, torch.zeros(2, *probe["input_shape"], device=device))
    t_dim = None
    if probe["teacher"] is not None:
        t_emb = probe["teacher"].embedding
        t_dim = int(t_emb.shape[1]) if t_emb is not None else int(probe["teacher"].logits.shape[1])
    torch.manual_seed(mix_seed(cfg.seed, 7))  # helpers initialised from the run seed, same on every rank
    widths = Widths(
        student_dim=int(s_emb.shape[1]),
        teacher_dim=t_dim,
        teacher_embedding=probe["teacher"] is not None and probe["teacher"].embedding is not None,
        low_channels=int(s_low.shape[1]) if s_low is not None else None,
    )
    run.parts = DistillParts([h for term in terms for h in term.helpers], widths).to(device)
    params = student_params(run)
    if cfg.optimizer == Optimizer.SGD:
        run.opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        run.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if run.parts.disc_params():
        # Adam with beta1 = 0.5, the usual choice for adversarial games (less momentum lag).
        run.disc_opt = torch.optim.Adam(run.parts.disc_params(), lr=cfg.disc_lr, betas=(0.5, 0.999))
    warmup = int(round(cfg.warmup_epochs * steps / max(1, cfg.epochs)))
    run.sched = torch.optim.lr_scheduler.LambdaLR(run.opt, _lr_lambda(steps, warmup))
    return run


def fingerprint(cfg: DistillConfig, spec: StudentSpec, task: Any, dist: D.DistInfo) -> str:
    ref = getattr(task, "data_ref", None)
    data = ref.to_dict() if ref is not None else None
    return serde.fingerprint({"cfg": cfg.to_dict(), "spec": spec.key_dict(), "data": data, "world": dist.world})


def make_streams(task: Any, cfg: DistillConfig, dist: D.DistInfo) -> Streams:
    labeled, unlabeled = task.labeled, (task.unlabeled if cfg.unlabeled_used else None)
    if not cfg.labels_used:
        # Label-free: the labeled images (labels ignored) join the pool as one unlabeled stream.
        from torch.utils.data import ConcatDataset

        unlabeled = labeled if unlabeled is None else ConcatDataset([labeled, unlabeled])
        labeled = None
    ub = cfg.unlabeled_batch_size or cfg.batch_size
    for name, b in (("batch_size", cfg.batch_size), ("unlabeled_batch_size", ub)):
        if b % dist.world:
            raise DistillError(f"distill config: {name} = {b} must be divisible by the {dist.world} processes")
    return Streams(labeled, unlabeled, batch=cfg.batch_size, unlabeled_batch=ub, seed=cfg.seed,
                   rank=dist.rank, world=dist.world, steps=cfg.steps_per_epoch)
