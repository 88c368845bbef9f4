"""DistillConfig validation and the loss registry's math."""

from __future__ import annotations

import json

import pytest
import torch

from edgecompress.distill.config import TERMS, DiscRegularizer, DistillConfig, Method
from edgecompress.distill.discriminators import DistillParts
from edgecompress.distill.losses import LOSSES, StepTensors, anc_disc_loss, kd_loss
from edgecompress.errors import ConfigError


def test_presets_and_overrides() -> None:
    assert DistillConfig(method="supervised").weights() == {"ce": 1.0}
    assert set(DistillConfig(method="anc+align").weights()) == {"ce", "adv", "data", "align"}
    free = DistillConfig(method="anc-labelfree")
    assert "ce" not in free.weights() and not free.labels_used and free.unlabeled_used
    combo = DistillConfig(method="kd", fitnet_weight=0.5, ce_weight=0)
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


def test_every_term_is_registered() -> None:
    assert set(TERMS) <= set(LOSSES)


def _tensors(s: torch.Tensor, t: torch.Tensor) -> StepTensors:
    return StepTensors(s, torch.randn(len(s), 6), None, t, torch.randn(len(s), 6), torch.zeros(len(s), dtype=torch.long), len(s))


def test_kd_is_zero_at_match_and_scales_with_t_squared() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 5)
    parts = DistillParts(student_dim=6, teacher_dim=6, low_channels=None, fitnet=False, adv=False, align=False)
    assert float(kd_loss(_tensors(logits, logits), parts, DistillConfig(method="kd"))) == pytest.approx(0.0, abs=1e-6)
    # At high T, KL(p_t || p_s) ~ Var(s - t) / (2 T^2): without the T^2 factor doubling T would
    # quarter the term; with it the term (and its gradient) keeps its size whatever T is.
    s = logits + 0.05 * torch.randn(8, 5)
    small = [float(kd_loss(_tensors(s, logits), parts, DistillConfig(method="kd", temperature=T))) for T in (8.0, 16.0)]
    assert small[1] / small[0] == pytest.approx(1.0, rel=0.05)


def test_disc_regularizers_change_the_loss() -> None:
    torch.manual_seed(0)
    parts = DistillParts(student_dim=6, teacher_dim=6, low_channels=None, fitnet=False, adv=True, align=False)
    real, fake = torch.randn(16, 6), torch.randn(16, 6)
    values = {}
    for reg in DiscRegularizer:
        torch.manual_seed(1)
        values[reg] = float(anc_disc_loss(real, fake, parts, DistillConfig(method="anc", disc_regularizer=reg, disc_reg_weight=0.1)).detach())
    assert values[DiscRegularizer.L1] > values[DiscRegularizer.NONE]
    assert values[DiscRegularizer.L2] > values[DiscRegularizer.NONE]
    assert values[DiscRegularizer.ADVERSARIAL_SAMPLES] > values[DiscRegularizer.NONE]
