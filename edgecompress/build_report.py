"""The typed end of the pipeline: what a build decided, measured and deployed (stdlib only).

``make_summary`` (summary.py) fills a :class:`BuildSummary` from the stage outputs; the HTML
report, the one-screen CLI output and ``summary.json`` are all rendered from it, so the three
can never disagree and a renamed field is a type error, not a ``KeyError`` after training.
``BuildReport`` (``build.json``, what ``build()`` returns) carries it.

``summary.json`` keeps the shape it had when it was a dict: the field names below are its keys.
Reading it back is strict like every other file (unknown keys and wrong types fail in one line).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from edgecompress.artifacts import Artifact, BenchmarkResult, ExportArtifact, StudentSpec
from edgecompress.profiles import DeviceProfile


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The deployed artifact against the device's budgets."""

    deployed_artifact: str | None
    deployed_precision: str | None
    deployed_reason: str
    deployed_fallback: bool
    latency_ms: float | None
    latency_source: str
    latency_ok: bool | None  # None: neither measured nor predicted
    peak_ram_mb: float | None
    peak_ram_source: str
    ram_ok: bool | None
    size_mb: float | None
    size_ok: bool | None
    all_ok: bool
    why: str  # the budgets missed, comma-separated ("" when all_ok)


@dataclasses.dataclass(frozen=True)
class CandidateRow:
    """One costed candidate of the selection (``candidates.json`` holds the same rows)."""

    family: str
    label: str
    arch: str
    width_mult: float
    macs: int
    params: int
    precision: str
    latency_ms: float
    peak_ram_mb: float
    size_mb: float
    fits: bool
    over: tuple[str, ...] = ()
    compression_x: float | None = None
    chosen: bool = False
    # The upper end of the latency prediction interval, when the device's calibration has one.
    latency_upper_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class SelectionRecord:
    chosen: StudentSpec
    criterion: str
    latency_source: str
    candidates: tuple[CandidateRow, ...]


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    teacher: str  # the teacher file (or the built-in demo teacher's)
    config: dict[str, Any]  # the DistillConfig as run
    final: dict[str, float]  # the checkpoint's metrics
    history: tuple[dict[str, Any], ...]  # per-epoch rows, loss terms as ``loss_<term>``


@dataclasses.dataclass(frozen=True)
class CompressionSide:
    macs: int
    params: int
    size_bytes: int | None
    predicted_latency_ms: float | None
    test_acc: float | None
    precision: str | None = None  # teacher side: the precision its size is predicted at
    cost_source: str | None = None  # teacher side: graph | flop-counter | onnx
    test_agreement: float | None = None  # student side: top-1 agreement with the teacher


@dataclasses.dataclass(frozen=True)
class Compression:
    """The student next to its teacher; ratios are teacher over student (8.0: eight times smaller)."""

    target_x: float | None
    teacher: CompressionSide
    student: CompressionSide
    macs_x: float | None
    params_x: float | None
    size_x: float | None
    latency_x: float | None
    acc_delta_pt: float | None


@dataclasses.dataclass(frozen=True)
class AttemptRow:
    """One quantization attempt of one export target (a target built once is one row)."""

    file: str
    format: str
    precision: str
    step: str | None
    description: str | None
    top1_agreement: float | None
    acc_delta_pt: float | None
    size_bytes: int | None
    float_share: float | None
    passed: bool | None
    error: str | None
    written: bool
    # On the device, from the latency predictor: int8 and fp32 of the student, interpolated by
    # the share of weights kept in float (a mixed file's Quantize/Dequantize glue is not counted).
    predicted_latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class PredictedVsMeasured:
    label: str
    predicted_ms: float
    measured_p50_ms: float
    error_pct: float


@dataclasses.dataclass(frozen=True)
class BuildSummary(Artifact):
    """Every number the report shows (``summary.json``)."""

    kind: ClassVar[str] = "build_summary"
    headline: str
    config: dict[str, Any]
    profile: DeviceProfile
    selection: SelectionRecord
    training: TrainingRecord
    artifacts: tuple[ExportArtifact, ...]
    export_attempts: tuple[AttemptRow, ...]
    benchmarks: tuple[BenchmarkResult, ...]
    predicted_vs_measured: tuple[PredictedVsMeasured, ...]
    latency_note: str
    verdict: Verdict
    compression: Compression | None
    environment: dict[str, str]
    stages: dict[str, float]
    resumed_stages: tuple[str, ...]
    wall_s: float

    def chosen_label(self) -> str:
        spec = self.selection.chosen
        return spec.label or spec.arch


@dataclasses.dataclass(frozen=True)
class BuildReport(Artifact):
    """What ``build()`` returns and writes as ``build.json``."""

    kind: ClassVar[str] = "build_report"
    device: str
    spec: StudentSpec
    checkpoint: str
    artifacts: tuple[ExportArtifact, ...]
    benchmarks: tuple[BenchmarkResult, ...]
    report_html: str
    wall_s: float
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    # None only in build.json files written before the summary was typed.
    summary: BuildSummary | None = None
