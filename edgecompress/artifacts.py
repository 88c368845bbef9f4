"""The frozen hand-off types between pipeline stages (stdlib only).

    DeviceProfile --select_student--> StudentSpec --distill--> Checkpoint
        --export--> [ExportArtifact, ...] --benchmark--> [BenchmarkResult, ...]
        --report--> BuildReport (build_report.py)

Every type is a frozen dataclass with a JSON round trip (``to_json`` / ``from_json``,
``save`` / ``load``). Reading rejects unknown keys and wrong types with one line naming the
field, so a hand-edited or stale file fails loudly instead of half-loading. Files are written
atomically so an interrupted run never leaves a finished-looking artifact.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from edgecompress.serde import (
    SCHEMA_VERSION,
    Artifact,
    _decode,
    _decode_dataclass,
    _encode,
    atomic_write_bytes,
    atomic_write_text,
    finite,
    read_toml,
    sha256_file,
    strict_dumps,
)

# The serialization helpers live in serde.py; the stages import them from here too.
__all__ = [
    "SCHEMA_VERSION", "Artifact", "_decode", "_decode_dataclass", "_encode", "atomic_write_bytes", "atomic_write_text",
    "finite", "read_toml", "sha256_file", "strict_dumps",
]


# --------------------------------------------------------------------------- the hand-off types


@dataclasses.dataclass(frozen=True)
class Preprocessing(Artifact):
    """Exactly how raw pixels become the model input; export, parity and device runners reuse it.

    Raw RGB uint8 images are scaled by ``pixel_scale`` (1/255: values in [0, 1]; 1: in
    [0, 255]), converted to ``input_shape``'s channel count, put in ``channel_order`` ("rgb" or
    "bgr") and resized to ``input_shape`` with ``resize`` ("bilinear" or "nearest"); the model
    sees ``(x - mean[c]) / std[c]``, with mean/std in the scaled units and channel order.
    ``source`` says where mean/std came from (the data, the teacher's file, an option).
    """

    kind: ClassVar[str] = "preprocessing"
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "bilinear"
    pixel_scale: float = 1.0 / 255.0
    channel_order: str = "rgb"
    source: str = "data"


@dataclasses.dataclass(frozen=True)
class DataRef(Artifact):
    """Enough to reload the same data split in a later stage (export calibration, parity)."""

    kind: ClassVar[str] = "data_ref"
    source: str  # built-in name ("digits", "shapes") or a path
    unlabeled: str | None = None
    labeled_fraction: float = 1.0
    seed: int = 0
    input_shape: tuple[int, int, int] | None = None


@dataclasses.dataclass(frozen=True)
class CostEstimate(Artifact):
    kind: ClassVar[str] = "cost_estimate"
    macs: int
    params: int
    peak_activation_bytes: int
    size_bytes: dict[str, int]  # precision -> model file size estimate
    predicted_latency_ms: float | None = None
    runtime: str | None = None
    precision: str | None = None


@dataclasses.dataclass(frozen=True)
class TeacherRecord:
    """The teacher as the selection costed it (its predicted device figures when its graph allows)."""

    macs: int
    params: int
    source: str  # graph | flop-counter | onnx
    size_bytes: dict[str, int] | None = None
    precision: str | None = None
    predicted_latency_ms: float | None = None
    peak_ram_mb: float | None = None
    size_mb: float | None = None


@dataclasses.dataclass(frozen=True)
class SelectionInfo:
    """Why the selection chose a student: the device, its budgets and the chosen one's figures."""

    device: str
    criterion: str
    precision: str
    budget: dict[str, float]
    predicted_latency_ms: float
    peak_ram_mb: float
    size_mb: float
    latency_source: str
    candidates: int
    fitting: int
    compress_target: float | None = None
    compression_x: float | None = None
    teacher: TeacherRecord | None = None
    # The upper end of the latency prediction interval the budget was checked against, if any.
    latency_upper_ms: float | None = None


# Keys that StudentSpec.extra held before they became typed fields (old spec / checkpoint files).
_LEGACY_EXTRA = {"label": "label", "kept": "kept", "select": "selection"}


@dataclasses.dataclass(frozen=True)
class StudentSpec(Artifact):
    """A student architecture as data: registry family + compact arch string.

    ``kept`` is the pruned-teacher family's structure (channels kept per pruning group), so the
    student is rebuilt from the spec alone; ``extra`` is free-form data a family or a tool adds
    (the calibration probe index, ...), never read by the pipeline.
    """

    kind: ClassVar[str] = "student_spec"
    family: str
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    width_mult: float = 1.0
    cost: CostEstimate | None = None
    label: str | None = None  # what a person reads ("d2 w0.75", "keep0.32"); arch when None
    kept: dict[str, int] | None = None
    selection: SelectionInfo | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Specs written before these fields were typed kept them in ``extra``: move them over,
        # decoding through the same strict path, so old run folders still load.
        legacy = {k: v for k, v in self.extra.items() if k in _LEGACY_EXTRA}
        if not legacy:
            return
        hints = typing.get_type_hints(type(self))
        for key, value in legacy.items():
            field = _LEGACY_EXTRA[key]
            if getattr(self, field) is None:
                object.__setattr__(self, field, _decode(hints[field], value, f"{self.kind}.extra.{key}"))
        object.__setattr__(self, "extra", {k: v for k, v in self.extra.items() if k not in _LEGACY_EXTRA})

    @property
    def display(self) -> str:
        return self.label or self.arch

    def key_dict(self) -> dict[str, Any]:
        """The spec as resume keys hash it: the typed fields folded back into ``extra`` the way
        they were stored before they were typed, so run folders made earlier still resume."""
        d = self.to_dict()
        extra = dict(d.pop("extra"))
        for key, field in _LEGACY_EXTRA.items():
            value = d.pop(field)
            if value is not None:
                extra[key] = value
        sel = extra.get("select")
        if sel is not None:
            sel = {k: v for k, v in sel.items() if not (k == "latency_upper_ms" and v is None)}
            if sel.get("teacher") is None:  # written only with a teacher
                sel = {k: v for k, v in sel.items() if k not in ("compress_target", "compression_x", "teacher")}
            extra["select"] = sel
        return {**d, "extra": extra}


@dataclasses.dataclass(frozen=True)
class Checkpoint(Artifact):
    """A trained student: weights file (relative to this JSON), spec, config, metrics."""

    kind: ClassVar[str] = "checkpoint"
    weights: str
    sha256: str
    spec: StudentSpec
    preprocessing: Preprocessing
    data: DataRef | None = None
    distill_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ParityReport(Artifact):
    kind: ClassVar[str] = "parity_report"
    n_samples: int
    top1_agreement: float
    acc_reference: float
    acc_artifact: float
    acc_delta_pt: float  # artifact minus reference, in percentage points
    max_abs_diff: float | None
    passed: bool
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    failures: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class InputSpec(Artifact):
    kind: ClassVar[str] = "input_spec"
    name: str
    shape: tuple[int, ...]
    dtype: str  # float32, int8, uint8
    layout: str  # NCHW or NHWC
    preprocessing: Preprocessing
    quant_scale: float | None = None
    quant_zero_point: int | None = None


@dataclasses.dataclass(frozen=True)
class QuantAttempt(Artifact):
    """One step of accuracy-aware int8 quantization and what it did to the parity numbers."""

    kind: ClassVar[str] = "quant_attempt"
    step: str  # ptq | calibration | sensitivity | mixed-precision
    description: str  # one line a person reads in the report
    settings: dict[str, Any]
    top1_agreement: float
    acc_delta_pt: float
    max_abs_diff: float | None
    size_bytes: int
    passed: bool
    float_share: float = 0.0  # share of the weights kept in float (the size cost of mixed precision)
    seconds: float = 0.0
    chosen: bool = False  # the attempt whose file the export kept (the best one)
    error: str | None = None  # the attempt could not be built or run (its numbers are then 0)


@dataclasses.dataclass(frozen=True)
class ExportArtifact(Artifact):
    kind: ClassVar[str] = "export_artifact"
    path: str
    format: str  # onnx | tflite
    precision: str  # fp32 | fp16 | dynamic-int8 | int8 | full-int8
    input: InputSpec
    size_bytes: int
    sha256: str
    op_counts: dict[str, int]
    parity: ParityReport | None = None
    export_s: float | None = None
    checkpoint_sha256: str | None = None
    log: str | None = None
    # int8 only: every quantization attempt, in order, when the first one missed the gate.
    attempts: tuple[QuantAttempt, ...] = ()
    # How the kept file was quantized (int8: calibration, weight bits and why, float layers, QAT
    # parity); {} for float artifacts.
    quant_settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LatencyStats(Artifact):
    kind: ClassVar[str] = "latency_stats"
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no latency samples")
        s = sorted(samples_ms)
        n = len(s)
        mean = sum(s) / n
        var = sum((x - mean) ** 2 for x in s) / n

        def pct(q: float) -> float:
            # Linear interpolation between closest ranks (numpy's default), stdlib only.
            pos = (n - 1) * q
            lo = int(pos)
            hi = min(lo + 1, n - 1)
            return s[lo] + (s[hi] - s[lo]) * (pos - lo)

        return cls(mean, var**0.5, s[0], s[-1], pct(0.5), pct(0.9), pct(0.99))


@dataclasses.dataclass(frozen=True)
class DeviceState:
    """What the device reported about its own heat and clocks (empty where unreadable)."""

    temperatures_c: dict[str, float] = dataclasses.field(default_factory=dict)  # thermal zone -> C
    governors: dict[str, str] = dataclasses.field(default_factory=dict)  # cpuN -> governor
    freqs_mhz: dict[str, float] = dataclasses.field(default_factory=dict)  # cpuN -> current MHz
    raw: str = ""  # e.g. Android's `dumpsys thermalservice`, kept as printed


@dataclasses.dataclass(frozen=True)
class WindowStats:
    num_runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclasses.dataclass(frozen=True)
class SustainedStats:
    """A sustained run: latency over time, first window vs last window (bench --sustained)."""

    duration_s: float
    window_s: float  # 60 s for runs of 3 minutes or more, else a tenth of the run
    first: WindowStats
    last: WindowStats
    t_s: tuple[float, ...] = ()  # end of each time slice
    p50_ms: tuple[float, ...] = ()  # per slice
    p99_ms: tuple[float, ...] = ()
    sampled: bool = False  # the overall latency comes from a uniform sample of the runs

    @property
    def drift_p50_pct(self) -> float:
        return (self.last.p50_ms / self.first.p50_ms - 1.0) * 100.0 if self.first.p50_ms else 0.0

    @property
    def drift_p99_pct(self) -> float:
        return (self.last.p99_ms / self.first.p99_ms - 1.0) * 100.0 if self.first.p99_ms else 0.0


@dataclasses.dataclass(frozen=True)
class BenchmarkResult(Artifact):
    kind: ClassVar[str] = "benchmark_result"
    device: str
    runner: str  # local | adb | ssh
    runtime: str  # onnxruntime | litert | tflite_runtime | benchmark_model
    runtime_version: str
    artifact: str
    precision: str
    threads: int
    warmup_runs: int
    num_runs: int
    latency: LatencyStats
    init_ms: float | None = None
    first_inference_ms: float | None = None
    peak_mem_mb: float | None = None
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    samples_ms: tuple[float, ...] = ()
    raw_output: str | None = None  # path of the raw tool output kept beside the JSON
    op_profile: tuple[dict[str, Any], ...] = ()
    # Non-empty when the runner saw it ran under an emulator (qemu-user): then the latency is
    # the emulator's, not a device latency, and calibration refuses it.
    emulated: str = ""
    cooldown_s: float = 0.0
    state_before: DeviceState | None = None
    state_after: DeviceState | None = None
    sustained: SustainedStats | None = None
    # The parity gate re-run on this device's own kernels (build --host): XNNPACK's ARM int8
    # paths are different code from the x86 ones the export-time gate ran.
    device_parity: ParityReport | None = None
