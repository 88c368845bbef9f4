"""A toy loss term: the whole change a new term needs is this file."""

from __future__ import annotations

import torch

from edgecompress.distill.loss_registry import Helper, register_loss

CALLS = {"loss": 0, "disc": 0}
TOY_PROBE = Helper("toy_probe", "disc", lambda w: torch.nn.Linear(w.student_dim, 1))


def _toy_disc(t, parts, cfg):  # type: ignore[no-untyped-def]
    CALLS["disc"] += 1
    return parts.toy_probe(t.s_emb.detach()).pow(2).mean()


@register_loss("toy_margin", needs=("teacher",), helpers=(TOY_PROBE,), disc_loss=_toy_disc,
               help="toy: hinge on the teacher's top-1 logit margin")
def toy_margin(t, parts, cfg):  # type: ignore[no-untyped-def]
    CALLS["loss"] += 1
    top = t.t_logits.argmax(1)
    own = t.s_logits.gather(1, top[:, None])[:, 0]
    return torch.relu(1.0 - (own - t.s_logits.mean(1))).mean()
