"""The built-in loss terms, each declared in the registry (:mod:`loss_registry`) with the data
it needs, the helpers it owns and its discriminator step.

The student loss is ``sum(weight[name] * LOSSES[name](...))`` over the config's non-zero
weights. Row layout of every batch: the first ``n_labeled`` rows come from the labeled stream,
the rest from the unlabeled stream; teacher-mimicking terms use all rows, cross-entropy only the
labeled ones. Registration order is the order helpers are built in (and so their seeded init).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecompress.distill.config import DiscRegularizer, DistillConfig
from edgecompress.distill.discriminators import DistillParts, DomainDiscriminator, EmbeddingDiscriminator, adapter
from edgecompress.distill.loss_registry import LOSSES, Helper, Mix, StepTensors, Widths, register_loss

__all__ = ["LOSSES", "Mix", "StepTensors", "register_loss"]


def _to_teacher(w: Widths) -> int:
    return w.teacher_dim if w.teacher_dim is not None else w.student_dim


# The helpers the built-in terms own.
FITNET_ADAPTER = Helper("fitnet_adapter", "student", lambda w: adapter(w.student_dim, _to_teacher(w)))
# Without a teacher embedding the ANC discriminator compares logits: nothing to adapt.
ANC_ADAPTER = Helper("anc_adapter", "student",
                     lambda w: adapter(w.student_dim, _to_teacher(w)) if w.teacher_embedding else nn.Identity())
ANC_DISC = Helper("anc_disc", "disc", lambda w: EmbeddingDiscriminator(_to_teacher(w)))
DOMAIN_DISC = Helper("domain_disc", "disc", lambda w: DomainDiscriminator(w.low_channels) if w.low_channels else None)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@register_loss("ce", needs=("labels",), help="cross-entropy on the labeled rows")
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


@register_loss("kd", needs=("teacher",), help="Hinton KD: KL to the teacher's softened outputs, every row")
def kd_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # Hinton et al.: the soft-target gradients scale as 1/T^2, so multiply by T^2 to keep the
    # term's magnitude comparable to cross-entropy whatever temperature is chosen.
    T = cfg.kd_temperature
    log_p_s = F.log_softmax(t.s_logits / T, dim=1)
    log_p_t = F.log_softmax(t.t_logits / T, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (T * T)


@register_loss("fitnet", needs=("teacher", "teacher_embedding"), helpers=(FITNET_ADAPTER,),
               help="FitNets: regress the teacher's embedding through an adapter")
def fitnet_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    return F.mse_loss(parts.fitnet_adapter(t.s_emb), t.t_emb)


@register_loss("data", needs=("teacher",), help="ANC's data term: L2 between student and teacher logits")
def data_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # ANC's data term: pull the student's logits to the teacher's (L2), on every row.
    return F.mse_loss(t.s_logits, t.t_logits)


def anc_features(t: StepTensors, parts: DistillParts) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake) inputs of the ANC discriminator: teacher embedding vs adapted student
    embedding -- or the logits when the teacher gives no embedding (e.g. some ONNX files)."""
    if t.t_emb is not None:
        return t.t_emb, parts.anc_adapter(t.s_emb)
    return t.t_logits, t.s_logits


def _anc_disc_step(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    with torch.no_grad():  # the adapter's output again, without building a graph for it
        real, fake = anc_features(t, parts)
    # Detach explicitly: with equal widths there is no adapter and ``fake`` *is* the student
    # embedding, whose graph the student step has already freed.
    return anc_disc_loss(real.detach(), fake.detach(), parts, cfg)


@register_loss("adv", needs=("teacher",), helpers=(ANC_ADAPTER, ANC_DISC), disc_loss=_anc_disc_step,
               help="ANC: fool a discriminator on embeddings (teacher = real)")
def adv_loss(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor:
    # Non-saturating generator loss: the student wants D to call its features "teacher" (1).
    _, fake = anc_features(t, parts)
    return _bce(parts.anc_disc(fake), 1.0)


def _domain_disc_step(t: StepTensors, parts: DistillParts, cfg: DistillConfig) -> torch.Tensor | None:
    if t.s_low is None:
        return None
    return domain_disc_loss(t.s_low.detach().float(), t.n_labeled, parts)


@register_loss("align", needs=("labels", "unlabeled", "low_level"), helpers=(DOMAIN_DISC,), disc_loss=_domain_disc_step,
               help="Tang et al.: make labeled and unlabeled early features indistinguishable")
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
