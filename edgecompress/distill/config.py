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
from edgecompress.methods import _PRESETS, Method

__all__ = ["DiscRegularizer", "DistillConfig", "Method", "Optimizer"]


class DiscRegularizer(str, enum.Enum):
    """How the ANC discriminator is kept from winning trivially (Belagiannis et al. 2018)."""

    ADVERSARIAL_SAMPLES = "adversarial-samples"  # dropout(student emb) shown to D as *teacher*
    L1 = "l1"
    L2 = "l2"
    NONE = "none"


class Optimizer(str, enum.Enum):
    SGD = "sgd"
    ADAMW = "adamw"


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Everything that decides a distillation run (hashed into the resume state).

    ``loss_weights`` overrides ``method``'s preset weights term by term (0 switches a term
    off, a positive weight switches any registered term on for any method).
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
    # Loss-term weights by registered term name, over the method's preset (0 switches a term
    # off, a positive weight on); None = the preset alone. JSON written before this field
    # existed spells them as ``<term>_weight`` keys, still read by from_dict.
    loss_weights: dict[str, float] | None = None
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
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"distill config: {name} = {getattr(self, name)!r} is not allowed (must be {allowed})")
        self._check_loss_weights()

    def _check_loss_weights(self) -> None:
        from edgecompress.distill.loss_registry import loss_terms, needing

        terms = loss_terms()
        for name, w in (self.loss_weights or {}).items():
            if name not in terms:
                raise ConfigError(f"distill config: loss_weights has unknown term {name!r} (registered: {', '.join(terms)})")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 1e6:
                raise ConfigError(f"distill config: loss_weights[{name!r}] = {w!r} is not allowed (a number in [0, 1e6])")
        weights = self.weights()
        if not weights:
            raise ConfigError("distill config: every loss weight is 0; nothing would be trained")
        if not self.labels_used:
            for name in needing(weights, "labels"):
                raise ConfigError(f"distill config: {name}_weight > 0 needs labels, but use_labels is false")
        if not self.unlabeled_used:
            for name in needing(weights, "unlabeled"):
                raise ConfigError(f"distill config: {name}_weight > 0 needs the unlabeled stream (use_unlabeled = true)")

    # ---------------------------------------------------------------- resolved views

    def weights(self) -> dict[str, float]:
        """Loss term -> weight, the preset overridden by ``loss_weights``; zeros dropped; in
        registration order."""
        from edgecompress.distill.loss_registry import loss_terms

        preset = _PRESETS[Method(self.method)]["weights"]
        override = self.loss_weights or {}
        out = {}
        for term in loss_terms():
            w = override.get(term, preset.get(term, 0.0))
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
        """Strict decoding (unknown keys, wrong types and enum values named in one line)."""
        from edgecompress.distill.loss_registry import loss_terms

        data = dict(data)
        legacy = {k: data.pop(k) for k in list(data) if k.endswith("_weight") and k[: -len("_weight")] in loss_terms()}
        legacy_weights = {k[: -len("_weight")]: v for k, v in legacy.items() if v is not None}
        if legacy_weights:  # a config written before loss_weights existed
            data["loss_weights"] = {**legacy_weights, **(data.get("loss_weights") or {})}
        return _decode_dataclass(cls, data, where)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, text: str, where: str = "distill config") -> DistillConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, where)

    def replace(self, **changes: Any) -> DistillConfig:
        return dataclasses.replace(self, **changes)
