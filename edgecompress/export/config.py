"""`ExportConfig`: what to export and how strictly to check it, as plain data (stdlib only).

The recipe is data (formats x precisions, layout, opset, calibration size, int8 I/O dtype) and
the parity thresholds live beside it, so a build's cache key and its report carry exactly the
rules an artifact was held to.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgecompress.errors import ExportError
from edgecompress.export.formats import list_formats

# What a user may ask for. "int8" means the best int8 recipe of each format: QDQ static int8
# for ONNX, full-integer int8 for TFLite. "dynamic-int8" (weights-only int8) is TFLite-only.
PRECISIONS = ("fp32", "fp16", "int8", "dynamic-int8", "full-int8")
LAYOUTS = ("nhwc", "nchw")
INT8_IO = ("int8", "uint8", "float32")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """The export recipe and its parity gate.

    Thresholds (all applied on the validation set, each artifact through its own runtime,
    against eager PyTorch):

    - ``fp32_max_abs_diff`` (1e-4): largest absolute logit difference for fp32 artifacts.
    - ``fp16_max_rel_diff`` (1e-2): fp16 has an 11-bit significand (unit roundoff 4.9e-4 per
      operation); errors add up over a network's depth and scale with the logits, so the bound
      is relative: max |diff| <= 1e-2 * max(1, max |reference logit|). That is ~20 roundoffs of
      head-room, tight enough to catch overflow, a dropped op or wrong weights, loose enough
      for a 50-layer network accumulating in half precision.
    - ``min_top1_agreement`` (0.99): share of validation samples whose top-1 class equals the
      PyTorch one, for fp16 and every int8 artifact.
    - ``max_acc_drop_pt`` (1.0): task accuracy may fall at most this many percentage points.

    ``enforce_parity=False`` measures and records parity but keeps failing artifacts (for
    studies such as ``benchmarks/export_fidelity.py``); the default withholds them and, with
    ``fail_on_miss`` (default), fails the export after writing the ones that passed. ``build``
    turns ``fail_on_miss`` off: it deploys the best artifact that passed instead.

    Accuracy-aware int8 (``accuracy_aware``, default on): an int8 artifact that misses the gate
    with plain PTQ is rebuilt with better calibration (up to ``calibration_pool_size`` images,
    percentile / entropy ranges where the runtime's tooling has them), then, for ONNX, with the
    layers a sensitivity analysis finds most harmful kept in float, as long as they hold at
    most ``max_float_share`` of the weights (the stated size cost), and last with a
    quantization-aware fine-tune of ``qat_steps`` steps (``edgecompress/export/qat.py``). Every
    attempt is recorded in the artifact's manifest (``attempts``). See ``export/tuning.py``.
    ``qat=True`` skips PTQ: every int8 target is built from the QAT fine-tune directly.

    ``onnx_reduce_range``: 7-bit (True) or 8-bit (False) ONNX int8 weights; None (default)
    chooses by this CPU (``export/cpu_int8.py``) and records the choice in the manifest.
    """

    formats: tuple[str, ...] = ("onnx", "tflite")
    precisions: tuple[str, ...] = ("fp32", "int8")
    layout: str = "nhwc"  # TFLite input layout; ONNX keeps PyTorch's NCHW
    opset: int = 17
    dynamo: bool = False  # torch.onnx.export exporter: TorchScript (opset 17) or torch.export
    simplify: bool = True
    calibration_size: int = 256
    int8_io: str = "int8"  # TFLite full-int8 input/output tensor type
    # 7-bit weights in ONNX int8 (True) or 8-bit (False); None = by this CPU (export/cpu_int8.py):
    # ORT's x86 kernels without VNNI/AMX saturate with 8-bit weights, VNNI/AMX and ARM do not.
    onnx_reduce_range: bool | None = None
    parity_samples: int = 1000
    fp32_max_abs_diff: float = 1e-4
    fp16_max_rel_diff: float = 1e-2
    min_top1_agreement: float = 0.99
    max_acc_drop_pt: float = 1.0
    enforce_parity: bool = True
    fail_on_miss: bool = True
    accuracy_aware: bool = True
    calibration_pool_size: int = 1024
    max_float_share: float = 0.25
    qat_steps: int = 60  # quantization-aware fine-tune steps (60 did as well as 200, at 30% of the cost); 0 = never
    qat: bool = False  # int8 straight from a QAT fine-tune (no PTQ attempt first); needs qat_steps >= 1
    converter_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        # Accept lists from JSON / CLI callers but store tuples (frozen + hashable).
        object.__setattr__(self, "formats", tuple(str(f).lower() for f in self.formats))
        object.__setattr__(self, "precisions", tuple(str(p).lower() for p in self.precisions))
        object.__setattr__(self, "layout", str(self.layout).lower())
        self.validate()

    def validate(self) -> None:
        """Reject bad values with one line naming the field, before any work starts."""
        _choices("formats", self.formats, list_formats())
        _choices("precisions", self.precisions, PRECISIONS)
        if self.layout not in LAYOUTS:
            raise ExportError(f"export config: layout {self.layout!r} is not allowed (allowed: {', '.join(LAYOUTS)})")
        if self.int8_io not in INT8_IO:
            raise ExportError(f"export config: int8_io {self.int8_io!r} is not allowed (allowed: {', '.join(INT8_IO)})")
        min_opset = 18 if self.dynamo else 17
        if not isinstance(self.opset, int) or not min_opset <= self.opset <= 21:
            raise ExportError(f"export config: opset {self.opset!r} is not allowed (allowed: {min_opset}..21)")
        for name in ("calibration_size", "parity_samples", "calibration_pool_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExportError(f"export config: {name} {value!r} is not allowed (allowed: an integer >= 1)")
        for name in ("fp32_max_abs_diff", "fp16_max_rel_diff", "max_acc_drop_pt", "converter_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ExportError(f"export config: {name} {value!r} is not allowed (allowed: a number >= 0)")
        if self.onnx_reduce_range is not None and not isinstance(self.onnx_reduce_range, bool):
            raise ExportError(f"export config: onnx_reduce_range {self.onnx_reduce_range!r} is not allowed "
                              "(allowed: true, false, or absent for the CPU's choice)")
        if isinstance(self.qat_steps, bool) or not isinstance(self.qat_steps, int) or self.qat_steps < 0:
            raise ExportError(f"export config: qat_steps {self.qat_steps!r} is not allowed (allowed: an integer >= 0)")
        if not isinstance(self.qat, bool):
            raise ExportError(f"export config: qat {self.qat!r} is not allowed (allowed: true, false)")
        if self.qat and self.qat_steps < 1:
            raise ExportError("export config: qat is true but qat_steps is 0 (allowed: qat_steps >= 1 with qat)")
        share = self.max_float_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ExportError(f"export config: max_float_share {share!r} is not allowed (allowed: 0..1)")
        agree = self.min_top1_agreement
        if isinstance(agree, bool) or not isinstance(agree, (int, float)) or not 0 <= agree <= 1:
            raise ExportError(f"export config: min_top1_agreement {agree!r} is not allowed (allowed: 0..1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "export config") -> ExportConfig:
        """Build from a JSON/TOML table, rejecting unknown keys with the allowed ones listed."""
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ExportError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        return cls(**data)

    def thresholds(self) -> dict[str, float]:
        return {
            "fp32_max_abs_diff": self.fp32_max_abs_diff,
            "fp16_max_rel_diff": self.fp16_max_rel_diff,
            "min_top1_agreement": self.min_top1_agreement,
            "max_acc_drop_pt": self.max_acc_drop_pt,
        }


def _choices(field: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not values:
        raise ExportError(f"export config: {field} is empty (allowed: {', '.join(allowed)})")
    for value in values:
        if value not in allowed:
            raise ExportError(f"export config: {field} value {value!r} is not allowed (allowed: {', '.join(allowed)})")


def parse_list(text: str, field: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Split a CLI comma list (``onnx,tflite``) and check each item."""
    values = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    _choices(field, values, allowed)
    return values
