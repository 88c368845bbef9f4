"""Loss terms in a registry: ``LOSSES[name](tensors, parts, config) -> scalar``.

The student loss is ``sum(weight[name] * LOSSES[name](...))`` over the config's non-zero
weights; a new term is one decorated function. Discriminator losses are separate functions
(:func:`anc_disc_loss`, :func:`domain_disc_loss`) because a different optimizer minimizes them.

Row layout of every batch: the first ``n_labeled`` rows come from the labeled stream, the rest
from the unlabeled stream. Teacher-mimicking terms use all rows; cross-entropy only the
labeled ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from edgecompress.distill.config import DiscRegularizer, DistillConfig
from edgecompress.distill.discriminators import DistillParts


@dataclasses.dataclass
class StepTensors:
    """What one forward pass of student and teacher produced for one batch."""

    s_logits: torch.Tensor
    s_emb: torch.Tensor
    s_low: torch.Tensor | None  # early student feature map (alignment)
    t_logits: torch.Tensor | None
    t_emb: torch.Tensor | None
    y: torch.Tensor | None  # labels of the first n_labeled rows
    n_labeled: int
    mix: Mix | None = None  # the batch was mixed: row i = lam_i * x_i + (1 - lam_i) * x_perm[i]


@dataclasses.dataclass
class Mix:
    perm: torch.Tensor  # partner row of every row
    lam: torch.Tensor  # weight of the row's own image, per row


LossFn = Callable[[StepTensors, DistillParts, DistillConfig], torch.Tensor]
LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    def deco(fn: LossFn) -> LossFn:
        LOSSES[name] = fn
        return fn

    return deco


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@register_loss("ce")
def ce_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    n = t.n_labeled
    if t.mix is None:
        return F.cross_entropy(t.s_logits[:n], t.y)
    # Mixed batch: a labeled row's target is the mix of its own and its partner's labels; rows
    # mixed with a pool image have no label for the rest of their pixels and sit this term out
    # (the teacher-matching terms cover them).
    perm, lam = t.mix.perm[:n], t.mix.lam[:n]
    keep = perm < n
    if not bool(keep.any()):
        return t.s_logits.sum() * 0.0
    logp = F.log_softmax(t.s_logits[:n][keep], dim=1)
    own = -logp.gather(1, t.y[keep, None])[:, 0]
    other = -logp.gather(1, t.y[perm[keep], None])[:, 0]
    return (lam[keep] * own + (1 - lam[keep]) * other).mean()


@register_loss("kd")
def kd_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # Hinton et al.: the soft-target gradients scale as 1/T^2, so multiply by T^2 to keep the
    # term's magnitude comparable to cross-entropy whatever temperature is chosen.
    T = cfg.kd_temperature
    log_p_s = F.log_softmax(t.s_logits / T, dim=1)
    log_p_t = F.log_softmax(t.t_logits / T, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (T * T)


@register_loss("fitnet")
def fitnet_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    return F.mse_loss(parts.fitnet_adapter(t.s_emb), t.t_emb)


@register_loss("data")
def data_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # ANC's data term: pull the student's logits to the teacher's (L2), on every row.
    return F.mse_loss(t.s_logits, t.t_logits)


def anc_features(t: StepTensors, parts: DistillParts) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake) inputs of the ANC discriminator: teacher embedding vs adapted student
    embedding -- or the logits when the teacher gives no embedding (e.g. some ONNX files)."""
    if t.t_emb is not None:
        return t.t_emb, parts.anc_adapter(t.s_emb)
    return t.t_logits, t.s_logits


@register_loss("adv")
def adv_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # Non-saturating generator loss: the student wants D to call its features "teacher" (1).
    _, fake = anc_features(t, parts)
    return _bce(parts.anc_disc(fake), 1.0)


@register_loss("align")
def align_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # Domain *confusion* (target 0.5 for both streams), not flipped labels: neither stream is
    # the "real" one, the student should make them indistinguishable, and a confusion target
    # stays bounded when D is confident, where label flipping would oscillate.
    return _bce(parts.domain_disc(t.s_low), 0.5)


# --------------------------------------------------------------------------- discriminators


def weight_penalty(module: torch.nn.Module, kind: DiscRegularizer) -> torch.Tensor:
    ws = [p for n, p in module.named_parameters() if n.endswith("weight")]
    if kind == DiscRegularizer.L1:
        return sum(w.abs().sum() for w in ws)  # type: ignore[return-value]
    return sum((w * w).sum() for w in ws)  # type: ignore[return-value]


def anc_disc_loss(real: torch.Tensor, fake: torch.Tensor, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    """Teacher embeddings are real (1), student embeddings fake (0). Inputs are detached: this
    step must move only the discriminator."""
    disc = parts.anc_disc
    loss = _bce(disc(real), 1.0) + _bce(disc(fake), 0.0)
    reg = DiscRegularizer(cfg.disc_regularizer)
    if reg == DiscRegularizer.ADVERSARIAL_SAMPLES:
        # ANC's regularizer: student features with dropout, shown as *teacher*. D cannot simply
        # learn "anything student-like is fake", which keeps its gradients informative without
        # reducing its capacity.
        loss = loss + _bce(disc(F.dropout(fake, p=cfg.adv_dropout, training=True)), 1.0)
    elif reg in (DiscRegularizer.L1, DiscRegularizer.L2):
        loss = loss + cfg.disc_reg_weight * weight_penalty(disc, reg)
    return loss


def domain_disc_loss(low: torch.Tensor, n_labeled: int, parts: DistillParts) -> torch.Tensor:
    """Labeled rows are domain 0, unlabeled rows domain 1 (inputs detached)."""
    logits = parts.domain_disc(low)
    target = torch.ones_like(logits)
    target[:n_labeled] = 0.0
    return F.binary_cross_entropy_with_logits(logits, target)
