"""Distillation methods: named presets of loss weights and data streams (stdlib only, so the
CLI can list and validate them without importing torch).

A method is only a preset: ``DistillConfig(loss_weights=...)`` overrides any weight and can
switch on any registered loss term (``edgecompress.distill.loss_registry``).
"""

from __future__ import annotations

import enum
from typing import Any


class Method(str, enum.Enum):
    SUPERVISED = "supervised"
    KD = "kd"
    KD_UNLABELED = "kd+unlabeled"
    FM = "fm"
    FITNET = "fitnet"
    ANC = "anc"
    ANC_UNLABELED = "anc+unlabeled"
    ANC_ALIGN = "anc+align"
    ANC_LABELFREE = "anc-labelfree"


# Method presets: default loss weights (keys of the loss registry, distill/loss_registry.py)
# and the data each method trains on.

# The adversarial weight is 0.1, not 1: with AdamW (per-parameter normalized steps) a weight
# of 1 let the batch-coherent adversarial gradient swamp everything else and the student
# collapsed to chance (measured on shapes: 8.6% test accuracy at 100% labels vs 46.7% for
# supervised; 53.5% with 0.1). docs/distill.md has the numbers.
_PRESETS: dict[Method, dict[str, Any]] = {
    Method.SUPERVISED: {"weights": {"ce": 1.0}, "use_unlabeled": False, "use_labels": True},
    Method.KD: {"weights": {"ce": 1.0, "kd": 1.0}, "use_unlabeled": False, "use_labels": True},
    # Plain KD, but the teacher also labels the unlabeled pool: the baseline that decides
    # whether the adversarial terms earn their keep.
    Method.KD_UNLABELED: {"weights": {"ce": 1.0, "kd": 1.0}, "use_unlabeled": True, "use_labels": True},
    # Function matching (Beyer et al. 2022, "A good teacher is patient and consistent"): the
    # student matches the teacher's full output distribution (KL at T = 1) on the very image
    # the teacher saw -- the same crop and flip, and mixup across labeled and pool rows, which
    # fills the space between images with more points to match. Labels add cross-entropy on
    # the labeled rows (with mixed targets when both rows of a pair are labeled).
    Method.FM: {"weights": {"ce": 1.0, "kd": 1.0}, "use_unlabeled": True, "use_labels": True, "temperature": 1.0,
                "mixup_alpha": 1.0},
    Method.FITNET: {"weights": {"ce": 1.0, "fitnet": 1.0}, "use_unlabeled": False, "use_labels": True},
    Method.ANC: {"weights": {"ce": 1.0, "adv": 0.1, "data": 1.0}, "use_unlabeled": False, "use_labels": True},
    Method.ANC_UNLABELED: {"weights": {"ce": 1.0, "adv": 0.1, "data": 1.0}, "use_unlabeled": True, "use_labels": True},
    Method.ANC_ALIGN: {
        "weights": {"ce": 1.0, "adv": 0.1, "data": 1.0, "align": 0.3},
        "use_unlabeled": True,
        "use_labels": True,
    },
    # ANC as published: no labels at all; the labeled images (labels dropped) and the pool.
    Method.ANC_LABELFREE: {"weights": {"adv": 0.1, "data": 1.0}, "use_unlabeled": True, "use_labels": False},
}


METHODS: tuple[str, ...] = tuple(m.value for m in Method)
