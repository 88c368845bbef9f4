"""The four resumable stages of ``build``, declared as data (:class:`~edgecompress.stages.Stage`).

Each function returns a stage: its name, the key of everything it depends on (the previous
stage's key plus its own settings and results), the files it leaves in the run folder, how to
compute it and how to load it back. ``pipeline.build`` is glue: it validates, then hands the
stages to the stage cache one after the other. Policy that depends on the device (which format
to export, what a device benchmark measures) comes from the profile's runtime provider.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.artifacts import (
    BenchmarkResult,
    Checkpoint,
    ExportArtifact,
    StudentSpec,
    atomic_write_text,
    strict_dumps,
)
from edgecompress.profiles import DeviceProfile
from edgecompress.runconfig import RunConfig
from edgecompress.runtimes import get_runtime
from edgecompress.stages import Stage


def jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def export_plan(profile: DeviceProfile) -> tuple[list[str], list[str]]:
    """The format the profile's runtime executes, at each precision the profile lists."""
    return [get_runtime(profile.runtime.kind).artifact_format], list(profile.runtime.precisions)


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What every stage of one build reads: the resolved config, the device, the prepared
    task and teacher, the run folder and the key shared by all stages."""

    cfg: RunConfig
    profile: DeviceProfile
    task: Any  # edgecompress.data.Task
    teacher: Any  # edgecompress.distill.Teacher
    dcfg: Any  # edgecompress.distill.DistillConfig
    run_dir: Path
    base_key: dict[str, Any]
    log: Callable[[str], None]


Choice = tuple[StudentSpec, list[dict[str, Any]]]  # the chosen spec and every candidate's row


def select_stage(ctx: BuildContext, choose: Callable[[], Choice]) -> Stage[StudentSpec]:
    """``choose`` costs the candidates and chooses (``build`` calls it while validating, cached)."""
    spec_path, cand_path = ctx.run_dir / "spec.json", ctx.run_dir / "candidates.json"
    cfg = ctx.cfg

    def run(_resume: bool) -> StudentSpec:
        spec, rows = choose()
        atomic_write_text(cand_path, strict_dumps(rows, indent=2))
        spec.save(spec_path)
        return spec

    key = {**ctx.base_key, "latency_ms": cfg.latency_ms, "memory_mb": cfg.memory_mb, "compress": cfg.compress,
           **({"families": list(cfg.families)} if cfg.families else {})}
    return Stage("select", key, (spec_path, cand_path), run, lambda: StudentSpec.load(spec_path))


def distill_stage(ctx: BuildContext, after: Stage[Any], spec: StudentSpec, progress: bool) -> Stage[Checkpoint]:
    from edgecompress.distill import distill

    dist_dir = ctx.run_dir / "distill"
    ckpt_path = dist_dir / "checkpoint.json"

    def run(resume: bool) -> Checkpoint:
        ctx.log(f"[distill] method {ctx.cfg.method}, {ctx.dcfg.epochs} epochs" + (" (resuming)" if resume else ""))
        if not resume and dist_dir.exists():
            shutil.rmtree(dist_dir)  # inputs changed: the old training state belongs to another run
        return distill(ctx.teacher, spec, ctx.task, ctx.dcfg, dist_dir, resume=resume, progress=progress)

    key = {**after.key, "spec": spec.key_dict(), "distill": jsonable(ctx.dcfg)}
    return Stage("distill", key, (ckpt_path,), run, lambda: Checkpoint.load(ckpt_path))


def export_stage(ctx: BuildContext, after: Stage[Any], ckpt: Checkpoint, ecfg: Any, progress: bool) -> Stage[list[ExportArtifact]]:
    from edgecompress.export import export

    exp_dir = ctx.run_dir / "export"
    manifest = exp_dir / "artifacts.json"
    ckpt_path = after.outputs[0]

    def run(_resume: bool) -> list[ExportArtifact]:
        ctx.log(f"[export] {','.join(ecfg.formats)} x {','.join(ecfg.precisions)} with parity gate")
        arts = export(ckpt_path, ecfg, exp_dir, teacher=ctx.teacher.module, progress=progress)
        atomic_write_text(manifest, json.dumps([a.to_dict() for a in arts], indent=2))
        return arts

    def load() -> list[ExportArtifact]:
        return [ExportArtifact.from_dict(d) for d in json.loads(manifest.read_text())]

    key = {**after.key, "ckpt": ckpt.sha256, "export": jsonable(ecfg)}
    return Stage("export", key, (manifest,), run, load)


def bench_stage(ctx: BuildContext, after: Stage[Any], artifacts: list[ExportArtifact], ckpt_path: Path,
                ecfg: Any) -> Stage[list[BenchmarkResult]]:
    """Every artifact on this host; on the device too (``--serial`` / ``--host``) the ones its
    runtime executes; then, on a board, the parity gate again on its own kernels."""
    from edgecompress.bench import benchmark

    cfg, profile = ctx.cfg, ctx.profile
    bench_dir = ctx.run_dir / "bench"
    manifest = bench_dir / "results.json"
    provider = get_runtime(profile.runtime.kind)

    def run(_resume: bool) -> list[BenchmarkResult]:
        results = []
        timing: dict[str, Any] = {"runs": cfg.runs, "warmup": cfg.warmup, "sustained_s": cfg.sustained, "cooldown_s": cfg.cooldown}
        for art in artifacts:
            ctx.log(f"[bench] local {Path(art.path).name}")
            results.append(benchmark(art, "host", out_dir=bench_dir, **timing))
            if (cfg.serial or cfg.host) and provider.executes(art.format):
                ctx.log(f"[bench] {profile.name} {Path(art.path).name}")
                results.append(benchmark(art, profile, serial=cfg.serial, host=cfg.host, out_dir=bench_dir, **timing))
        if cfg.host:  # the parity gate again, on the board's own kernels (adb phones have no python)
            from edgecompress.bench.api import make_runner
            from edgecompress.bench.build_parity import board_parity, parity_set

            x, y, ref = parity_set(ckpt_path, ecfg.parity_samples, teacher=ctx.teacher.module)
            with make_runner(profile.connection.runner, profile, host=cfg.host) as board:
                results = board_parity(results, artifacts, board, x, y, ref, ecfg, log=ctx.log)
        atomic_write_text(manifest, json.dumps([r.to_dict() for r in results], indent=2))
        return results

    def load() -> list[BenchmarkResult]:
        return [BenchmarkResult.from_dict(d) for d in json.loads(manifest.read_text())]

    key = {**after.key, "arts": [a.sha256 for a in artifacts], "runs": cfg.runs, "warmup": cfg.warmup,
           "serial": cfg.serial, "host": cfg.host,
           # Only when used, so that runs cached before these options existed stay fresh.
           **({"sustained": cfg.sustained, "cooldown": cfg.cooldown} if cfg.sustained or cfg.cooldown else {})}
    return Stage("bench", key, (manifest,), run, load)
