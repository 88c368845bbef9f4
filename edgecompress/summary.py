"""summary.json: every number the report shows, gathered from the stage outputs into a BuildSummary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgecompress.artifacts import BenchmarkResult, Checkpoint, ExportArtifact, StudentSpec
from edgecompress.build_report import (
    AttemptRow,
    BuildSummary,
    CandidateRow,
    Compression,
    CompressionSide,
    PredictedVsMeasured,
    SelectionRecord,
    TrainingRecord,
    Verdict,
)
from edgecompress.cost.estimate import size_for
from edgecompress.export.deploy import Deployment, choose_deployed, export_attempts
from edgecompress.profiles import DeviceProfile
from edgecompress.runconfig import RunConfig
from edgecompress.runtimes import get_runtime
from edgecompress.stages import StageCache


def deployed_target(profile: DeviceProfile, spec: StudentSpec | None = None, require: str | None = None) -> tuple[str, str]:
    """The (format, artifact precision) the profile's runtime deploys for ``spec``: the precision
    ``--require`` names, else the one selection chose for it when there is one."""
    chosen = require or (spec.selection.precision if spec is not None and spec.selection is not None else None)
    return get_runtime(profile.runtime.kind).deployed(profile.runtime.precisions, chosen)


def _history(ckpt_path: Path) -> list[dict[str, Any]]:
    """Per-epoch rows of the trainer's metrics.jsonl, loss terms flattened to ``loss_<term>``."""
    f = ckpt_path.parent / "metrics.jsonl"
    if not f.exists():
        return []
    rows = []
    for line in f.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        terms = row.pop("loss", {})
        if isinstance(terms, dict):
            row.update({f"loss_{k}": v for k, v in terms.items()})
        if "disc_loss" in row:
            row["loss_discriminator"] = row.pop("disc_loss")
        rows.append(row)
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def compression_summary(spec: StudentSpec, metrics: dict[str, float], fmt: str | None = None) -> Compression | None:
    """The student next to its teacher: x MACs / params / file size / predicted latency (teacher
    over student, so 8.0 means eight times smaller) and both accuracies. None without a teacher.
    File sizes in ``fmt``, the format the device runs (int8 framing differs between formats)."""
    sel = spec.selection
    t = None if sel is None else sel.teacher
    if sel is None or t is None or spec.cost is None:
        return None
    prec = sel.precision or "fp32"
    s_size = size_for(spec.cost.size_bytes, prec, fmt) if prec in spec.cost.size_bytes else None
    t_size = size_for(t.size_bytes, prec, fmt) if t.size_bytes and prec in t.size_bytes else None
    acc, t_acc = metrics.get("test_acc"), metrics.get("teacher_test_acc")
    return Compression(
        target_x=sel.compress_target,
        teacher=CompressionSide(macs=t.macs, params=t.params, size_bytes=t_size, precision=prec,
                                predicted_latency_ms=t.predicted_latency_ms, test_acc=t_acc, cost_source=t.source),
        student=CompressionSide(macs=spec.cost.macs, params=spec.cost.params, size_bytes=s_size,
                                predicted_latency_ms=spec.cost.predicted_latency_ms, test_acc=acc,
                                test_agreement=metrics.get("test_agreement")),
        macs_x=_ratio(t.macs, spec.cost.macs),
        params_x=_ratio(t.params, spec.cost.params),
        size_x=_ratio(t_size, s_size),
        latency_x=_ratio(t.predicted_latency_ms, spec.cost.predicted_latency_ms),
        acc_delta_pt=None if acc is None or t_acc is None else round(100 * (acc - t_acc), 2),
    )


@dataclasses.dataclass(frozen=True)
class StageOutputs:
    """What the stages of one build produced, handed to :func:`make_summary`."""

    cfg: RunConfig
    profile: DeviceProfile
    spec: StudentSpec
    candidates: list[dict[str, Any]]  # candidates.json rows
    ckpt: Checkpoint
    ckpt_path: Path
    artifacts: list[ExportArtifact]
    benchmarks: list[BenchmarkResult]
    teacher: str
    deployment: Deployment | None = None
    # The student's predicted device latency per precision ("fp32", "int8"), for the attempts.
    predicted_ms: dict[str, float] = dataclasses.field(default_factory=dict)


def attempt_latency_ms(precision: str, float_share: float | None, predicted: dict[str, float]) -> float | None:
    """The predicted device latency of one export attempt: the student's int8 prediction moved
    towards its fp32 one by the share of weights kept in float; fp32 / fp16 files (XNNPACK and
    ONNX Runtime compute fp16 in fp32 on CPUs without fp16 arithmetic) at the fp32 prediction."""
    f32, i8 = predicted.get("fp32"), predicted.get("int8")
    if precision in ("fp32", "fp16"):
        return None if f32 is None else round(f32, 4)
    if precision in ("int8", "full-int8") and f32 is not None and i8 is not None:
        return round(i8 + (float_share or 0.0) * (f32 - i8), 4)
    return None


def _verdict(out: StageOutputs, deployment: Deployment, on_device: list[BenchmarkResult],
             local_same: list[BenchmarkResult], emulated: bool) -> Verdict:
    profile, budgets, sel = out.profile, out.profile.budgets, out.spec.selection
    deployed = deployment.artifact
    predicted = out.spec.cost.predicted_latency_ms if out.spec.cost else None
    if on_device:
        latency, latency_src = on_device[0].latency.p50_ms, f"measured on {profile.name}"
    elif profile.connection.runner == "local" and local_same:
        latency, latency_src = local_same[0].latency.p50_ms, "measured on this host"
    else:
        source = sel.latency_source if sel else "the profile's priors"
        why = "the board is emulated: its timings are not device latencies" if emulated else "no device attached: pass --serial or --host to measure"
        latency, latency_src = predicted, f"predicted for {profile.name} from {source} ({why})"
    peak_ram_mb = sel.peak_ram_mb if sel else None
    size_mb = deployed.size_bytes / 2**20 if deployed else None

    def ok(v: float | None, budget: float) -> bool | None:
        return None if v is None else v <= budget

    checks = {"latency_ok": ok(latency, budgets.latency_budget_ms), "ram_ok": ok(peak_ram_mb, budgets.peak_ram_budget_mb),
              "size_ok": ok(size_mb, budgets.model_size_budget_mb)}
    misses = [k for k, v in checks.items() if v is False]
    return Verdict(
        deployed_artifact=deployed.path if deployed else None, deployed_precision=deployed.precision if deployed else None,
        deployed_reason=deployment.reason, deployed_fallback=deployment.fallback,
        latency_ms=latency, latency_source=latency_src, peak_ram_mb=peak_ram_mb,
        peak_ram_source="predicted: peak activations by liveness + 2x weights + runtime overhead",
        size_mb=size_mb, **checks, all_ok=not misses, why=", ".join(misses),
    )


def make_summary(out: StageOutputs, cache: StageCache, wall_s: float) -> BuildSummary:
    from edgecompress.versions import versions

    profile, spec = out.profile, out.spec
    # The artifact the build deploys: the preferred one if it passed the gate, else the smallest
    # one that passed (export/deploy.py decides; the reason is shown with it).
    deployment = out.deployment or choose_deployed(out.artifacts, [], deployed_target(profile, spec, out.cfg.require))
    deployed = deployment.artifact
    same = [b for b in out.benchmarks if deployed and b.artifact.endswith(Path(deployed.path).name)]
    on_device = [b for b in same if b.runner != "local"]
    # An emulated board (qemu) runs the device's kernels but not at its speed: never its latency.
    emulated = [b for b in on_device if b.emulated]
    on_device = [b for b in on_device if not b.emulated]
    local_same = [b for b in same if b.runner == "local"]
    verdict = _verdict(out, deployment, on_device, local_same, bool(emulated))

    predicted = spec.cost.predicted_latency_ms if spec.cost else None
    pvm = tuple(
        PredictedVsMeasured(f"{b.runner}:{Path(b.artifact).name}", predicted, b.latency.p50_ms,
                            round(100.0 * (predicted - b.latency.p50_ms) / b.latency.p50_ms, 1))
        for b in on_device or (local_same if profile.connection.runner == "local" else []) if predicted
    )
    final = dict(out.ckpt.metrics)
    where = f"this host and an emulated {profile.name}" if emulated else "this host"
    note = "" if on_device or profile.connection.runner == "local" else (
        f"Measured on {where} (not on a real {profile.name}): these numbers compare artifacts; the {profile.name} "
        "latency in the summary cards is the predictor's."
    )
    latency = verdict.latency_ms
    sel = spec.selection
    return BuildSummary(
        headline=(
            f"{spec.family} {spec.arch} for {profile.name}: "
            f"{(final.get('test_acc') or final.get('val_acc') or 0) * 100:.1f}% accuracy, "
            f"latency {latency if latency is None else round(latency, 3)} ms ({verdict.latency_source})"
        ),
        config=out.cfg.to_dict(),
        profile=profile,
        selection=SelectionRecord(chosen=spec, criterion=sel.criterion if sel else "",
                                  latency_source=sel.latency_source if sel else "",
                                  candidates=tuple(CandidateRow(**row) for row in out.candidates)),
        training=TrainingRecord(teacher=out.teacher, config=out.ckpt.distill_config, final=final,
                                history=tuple(_history(out.ckpt_path))),
        artifacts=tuple(out.artifacts),
        # Every requested target, deployed or withheld, with each int8 quantization attempt.
        export_attempts=tuple(
            AttemptRow(**row, predicted_latency_ms=attempt_latency_ms(row["precision"], row["float_share"], out.predicted_ms))
            for row in export_attempts(deployment.targets)),
        benchmarks=tuple(out.benchmarks),
        predicted_vs_measured=pvm,
        latency_note=note,
        verdict=verdict,
        compression=compression_summary(spec, final, get_runtime(profile.runtime.kind).artifact_format),
        environment=versions(),
        stages={k: round(v, 2) for k, v in cache.timings.items()},
        resumed_stages=tuple(cache.skipped),
        wall_s=round(wall_s, 2),
    )
