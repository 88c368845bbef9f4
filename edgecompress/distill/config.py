"""`DistillConfig`: one frozen dataclass names the whole distillation recipe.

A *method* is only a preset of loss weights and data streams (the table below); every weight
can be overridden, so any combination of terms is a config, never a new code path
(torchao/accelerate style). Reading a config from JSON rejects unknown keys with the key named.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from edgecompress.artifacts import _decode_dataclass, _encode
from edgecompress.errors import ConfigError


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


class DiscRegularizer(str, enum.Enum):
    """How the ANC discriminator is kept from winning trivially (Belagiannis et al. 2018)."""

    ADVERSARIAL_SAMPLES = "adversarial-samples"  # dropout(student emb) shown to D as *teacher*
    L1 = "l1"
    L2 = "l2"
    NONE = "none"


class Optimizer(str, enum.Enum):
    SGD = "sgd"
    ADAMW = "adamw"


# Loss-term names (keys of the loss registry) and the data each method trains on.
TERMS = ("ce", "kd", "fitnet", "adv", "data", "align")

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


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Everything that decides a distillation run (hashed into the resume state).

    ``*_weight = None`` takes the weight from ``method``'s preset; a number overrides it
    (0 switches a term off, a positive weight switches it on for any method).
    """

    method: Method = Method.KD_UNLABELED  # the default chosen by benchmarks/compression_table.py
    epochs: int = 10
    batch_size: int = 64
    unlabeled_batch_size: int | None = None  # default: batch_size
    optimizer: Optimizer = Optimizer.ADAMW
    lr: float = 3e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    disc_lr: float = 1e-3
    seed: int = 0
    # loss weights (None = preset)
    ce_weight: float | None = None
    kd_weight: float | None = None
    fitnet_weight: float | None = None
    adv_weight: float | None = None
    data_weight: float | None = None
    align_weight: float | None = None
    use_unlabeled: bool | None = None
    use_labels: bool | None = None
    temperature: float | None = None  # KD temperature; None = the method's (4, or 1 for fm)
    mixup_alpha: float | None = None  # Beta(a, a) mixup of every batch; 0 = off; None = the method's
    disc_regularizer: DiscRegularizer = DiscRegularizer.ADVERSARIAL_SAMPLES
    disc_reg_weight: float = 1e-4  # for the L1 / L2 weight penalties
    adv_dropout: float = 0.5
    teacher_feature: str | None = None  # tap name for the teacher embedding; None = input of last Linear
    student_feature: str | None = None  # tap name for the student embedding; None = classifier input
    # Fixed epoch length in steps (the streams cycle); None = one pass over the larger stream.
    # Fixing it gives every method the same number of updates whatever its data streams are.
    steps_per_epoch: int | None = None
    deterministic: bool = True

    def __post_init__(self) -> None:
        # Accept plain strings (JSON, CLI) for the enums, and reject bad values with one line.
        for name, enum_cls in (("method", Method), ("optimizer", Optimizer), ("disc_regularizer", DiscRegularizer)):
            value = getattr(self, name)
            if not isinstance(value, enum_cls):
                try:
                    object.__setattr__(self, name, enum_cls(value))
                except ValueError:
                    allowed = ", ".join(m.value for m in enum_cls)
                    raise ConfigError(f"distill config: {name} = {value!r} is not allowed (one of: {allowed})") from None
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("disc_lr", self.disc_lr > 0, "> 0"),
            ("temperature", self.temperature is None or 0 < self.temperature <= 100, "in (0, 100]"),
            ("mixup_alpha", self.mixup_alpha is None or 0 <= self.mixup_alpha <= 100, "in [0, 100]"),
            ("adv_dropout", 0 <= self.adv_dropout < 1, "in [0, 1)"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
        ]
        if self.unlabeled_batch_size is not None:
            checks.append(("unlabeled_batch_size", self.unlabeled_batch_size >= 1, ">= 1"))
        if self.steps_per_epoch is not None:
            checks.append(("steps_per_epoch", self.steps_per_epoch >= 1, ">= 1"))
        for term in TERMS:
            w = getattr(self, f"{term}_weight")
            if w is not None:
                checks.append((f"{term}_weight", w >= 0, ">= 0"))
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"distill config: {name} = {getattr(self, name)!r} is not allowed (must be {allowed})")
        if not self.weights():
            raise ConfigError("distill config: every loss weight is 0; nothing would be trained")
        if not self.labels_used and self.weights().get("ce", 0) > 0:
            raise ConfigError("distill config: ce_weight > 0 needs labels, but use_labels is false")

    # ---------------------------------------------------------------- resolved views

    def weights(self) -> dict[str, float]:
        """Loss term -> weight, preset overridden by explicit ``*_weight`` fields; zeros dropped."""
        preset = _PRESETS[Method(self.method)]["weights"]
        out = {}
        for term in TERMS:
            w = getattr(self, f"{term}_weight")
            w = preset.get(term, 0.0) if w is None else w
            if w > 0:
                out[term] = float(w)
        return out

    def _or_preset(self, field: str, default: Any = None) -> Any:
        """The field's value when set, else the method preset's (``default`` where the preset is silent)."""
        value = getattr(self, field)
        return _PRESETS[Method(self.method)].get(field, default) if value is None else value

    @property
    def kd_temperature(self) -> float:
        return float(self._or_preset("temperature", 4.0))

    @property
    def mixup(self) -> float:
        """The Beta(a, a) parameter of batch mixup (0: no mixup)."""
        return float(self._or_preset("mixup_alpha", 0.0))

    @property
    def unlabeled_used(self) -> bool:
        return bool(self._or_preset("use_unlabeled"))

    @property
    def labels_used(self) -> bool:
        return bool(self._or_preset("use_labels"))

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in _encode(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "distill config") -> DistillConfig:
        enums = {"method", "optimizer", "disc_regularizer"}
        plain = {k: v for k, v in data.items() if k not in enums}
        # Decode the non-enum fields with the shared strict decoder (unknown keys, wrong types).
        base = _decode_dataclass(_Loose, {**plain, **{k: str(data[k]) for k in enums if k in data}}, where)
        return cls(**dataclasses.asdict(base))

    @classmethod
    def from_json(cls, text: str, where: str = "distill config") -> DistillConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, where)

    def replace(self, **changes: Any) -> DistillConfig:
        return dataclasses.replace(self, **changes)


def _loose_fields() -> list[tuple[str, Any, Any]]:
    """DistillConfig's fields with the enums typed as ``str`` (the strict decoder checks types)."""
    out = []
    for f in dataclasses.fields(DistillConfig):
        tp = "str" if f.name in ("method", "optimizer", "disc_regularizer") else f.type
        default = f.default.value if isinstance(f.default, enum.Enum) else f.default
        out.append((f.name, tp, dataclasses.field(default=default)))
    return out


# A twin of DistillConfig without validation or enums, used only to decode JSON strictly.
_Loose = dataclasses.make_dataclass("_Loose", _loose_fields(), namespace={"__module__": __name__})
