"""DistillConfig validation and the loss registry's math."""

from __future__ import annotations

import json

import pytest
import torch

from edgecompress.distill.config import DiscRegularizer, DistillConfig, Method
from edgecompress.distill.discriminators import DistillParts
from edgecompress.distill.loss_registry import Widths, loss_terms
from edgecompress.distill.losses import ANC_ADAPTER, ANC_DISC, StepTensors, anc_disc_loss, kd_loss
from edgecompress.errors import ConfigError, EdgeCompressError


def test_presets_and_overrides() -> None:
    assert DistillConfig(method="supervised").weights() == {"ce": 1.0}
    assert set(DistillConfig(method="anc+align").weights()) == {"ce", "adv", "data", "align"}
    free = DistillConfig(method="anc-labelfree")
    assert "ce" not in free.weights() and not free.labels_used and free.unlabeled_used
    combo = DistillConfig(method="kd", loss_weights={"fitnet": 0.5, "ce": 0})
    assert combo.weights() == {"kd": 1.0, "fitnet": 0.5}
    assert DistillConfig(method="kd", use_unlabeled=True).unlabeled_used


@pytest.mark.parametrize(
    "data, message",
    [
        ({"methd": "kd"}, "unknown key 'methd'"),
        ({"method": "dark-magic"}, "method = 'dark-magic' is not allowed"),
        ({"epochs": 0}, "epochs = 0"),
        ({"epochs": "3"}, "epochs: expected an integer"),
        ({"disc_regularizer": "l3"}, "disc_regularizer = 'l3'"),
        ({"method": "anc-labelfree", "ce_weight": 1.0}, "needs labels"),
        ({"method": "supervised", "ce_weight": 0}, "every loss weight is 0"),
        ({"method": "supervised", "loss_weights": {"cee": 1.0}}, "unknown term 'cee' \\(registered: ce, kd"),
        ({"method": "supervised", "loss_weights": {"kd": -1}}, r"loss_weights\['kd'\] = -1.0 is not allowed"),
        ({"method": "kd+unlabeled", "use_unlabeled": False, "align_weight": 0.3}, "align_weight > 0 needs the unlabeled stream"),
    ],
)
def test_bad_config_is_one_line(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        DistillConfig.from_dict(data)
    assert "\n" not in str(info.value)


def test_json_round_trip() -> None:
    cfg = DistillConfig(method=Method.ANC_UNLABELED, disc_regularizer=DiscRegularizer.L2, epochs=4)
    again = DistillConfig.from_json(json.dumps(cfg.to_dict()))
    assert again == cfg and again.method is Method.ANC_UNLABELED


def test_built_in_terms_are_declared() -> None:
    terms = loss_terms()
    assert list(terms)[:6] == ["ce", "kd", "fitnet", "data", "adv", "align"]
    assert terms["fitnet"].needs == {"teacher", "teacher_embedding"} and terms["adv"].disc_loss is not None
    assert [h.name for h in terms["adv"].helpers] == ["anc_adapter", "anc_disc"]
    # Legacy ``<term>_weight`` keys (checkpoints written before loss_weights) still decode.
    assert DistillConfig.from_dict({"method": "kd", "fitnet_weight": 0.5}).weights() == {"ce": 1.0, "kd": 1.0, "fitnet": 0.5}
    with pytest.raises(ValueError, match="already registered"):
        from edgecompress.distill.loss_registry import register_loss

        register_loss("kd")(lambda t, p, c: t.s_logits.sum())


def _tensors(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, n_labeled: int | None = None,
             mix: object = None) -> StepTensors:
    y = torch.zeros(len(s), dtype=torch.long) if y is None else y
    return StepTensors(s, torch.randn(len(s), 6), None, t, torch.randn(len(s), 6), y, len(s) if n_labeled is None else n_labeled,
                       mix)  # type: ignore[arg-type]


def test_kd_is_zero_at_match_and_scales_with_t_squared() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 5)
    parts = DistillParts()
    assert float(kd_loss(_tensors(logits, logits), parts, DistillConfig(method="kd"))) == pytest.approx(0.0, abs=1e-6)
    # At high T, KL(p_t || p_s) ~ Var(s - t) / (2 T^2): without the T^2 factor doubling T would
    # quarter the term; with it the term (and its gradient) keeps its size whatever T is.
    s = logits + 0.05 * torch.randn(8, 5)
    small = [float(kd_loss(_tensors(s, logits), parts, DistillConfig(method="kd", temperature=T))) for T in (8.0, 16.0)]
    assert small[1] / small[0] == pytest.approx(1.0, rel=0.05)


def test_disc_regularizers_change_the_loss() -> None:
    torch.manual_seed(0)
    parts = DistillParts([ANC_ADAPTER, ANC_DISC], Widths(6, 6, True, None))
    real, fake = torch.randn(16, 6), torch.randn(16, 6)
    values = {}
    for reg in DiscRegularizer:
        torch.manual_seed(1)
        values[reg] = float(anc_disc_loss(real, fake, parts, DistillConfig(method="anc", disc_regularizer=reg, disc_reg_weight=0.1)).detach())
    assert values[DiscRegularizer.L1] > values[DiscRegularizer.NONE]
    assert values[DiscRegularizer.L2] > values[DiscRegularizer.NONE]
    assert values[DiscRegularizer.ADVERSARIAL_SAMPLES] > values[DiscRegularizer.NONE]


def test_mixup_is_seeded_and_keeps_rows_mostly_themselves() -> None:
    from edgecompress.distill.streams import mix_batch

    x = torch.randn(10, 3, 4, 4)
    a, mix_a = mix_batch(x, 1.0, 123)
    b, mix_b = mix_batch(x, 1.0, 123)
    assert torch.equal(a, b) and torch.equal(mix_a.perm, mix_b.perm) and torch.equal(mix_a.lam, mix_b.lam)
    assert bool((mix_a.lam >= 0.5).all()) and bool((mix_a.lam <= 1).all())
    i = 3
    j = int(mix_a.perm[i])
    assert torch.allclose(a[i], mix_a.lam[i] * x[i] + (1 - mix_a.lam[i]) * x[j])
    same, none = mix_batch(x, 0.0, 1)
    assert same is x and none is None


def test_mixed_cross_entropy_uses_both_labels_and_skips_pool_partners() -> None:
    from edgecompress.distill.losses import Mix, ce_loss

    logits = torch.randn(4, 5)
    y = torch.tensor([1, 2])  # rows 0-1 labeled, rows 2-3 from the pool
    mix = Mix(perm=torch.tensor([1, 3, 0, 2]), lam=torch.tensor([0.7, 0.6, 0.9, 0.8]))
    t = _tensors(logits, logits, y=y, n_labeled=2, mix=mix)
    # row 0 is mixed with labeled row 1: 0.7 * CE(y=1) + 0.3 * CE(y=2); row 1's partner is a pool row: skipped
    logp = torch.log_softmax(logits[0], 0)
    expected = -(0.7 * logp[1] + 0.3 * logp[2])
    assert float(ce_loss(t, None, DistillConfig(method="fm"))) == pytest.approx(float(expected), rel=1e-5)


def test_fm_preset() -> None:
    cfg = DistillConfig(method="fm")
    assert cfg.weights() == {"ce": 1.0, "kd": 1.0} and cfg.unlabeled_used and cfg.mixup == 1.0 and cfg.kd_temperature == 1.0
    assert DistillConfig(method="kd").kd_temperature == 4.0 and DistillConfig(method="kd").mixup == 0.0
    assert DistillConfig(method="fm", mixup_alpha=0, temperature=2).mixup == 0.0
    assert DistillConfig(method="kd+unlabeled").unlabeled_used
    with pytest.raises(EdgeCompressError, match="mixup_alpha"):
        DistillConfig(mixup_alpha=-1)
