"""`build`: profile -> select -> distill -> export + parity -> benchmark -> report.

Glue only: each stage is a library call whose typed output is saved in the run directory, and
:class:`~edgecompress.stages.StageCache` skips stages whose inputs did not change.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from edgecompress.artifacts import (
    BenchmarkResult,
    BuildReport,
    Checkpoint,
    ExportArtifact,
    StudentSpec,
    atomic_write_text,
)
from edgecompress.profiles import DeviceProfile, load_profile
from edgecompress.runconfig import RunConfig
from edgecompress.stages import StageCache, file_fingerprint


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        import click

        click.echo(msg, err=True)


def export_plan(profile: DeviceProfile) -> tuple[list[str], list[str]]:
    """Formats and precisions the profile's runtime runs, plus ONNX fp32 (the interchange file)."""
    if profile.runtime.kind == "tflite-xnnpack":
        return ["onnx", "tflite"], list(profile.runtime.precisions)
    return ["onnx"], list(profile.runtime.precisions)


def _prepare(cfg: RunConfig) -> tuple[DeviceProfile, Any, Any, Path]:
    """Everything that can fail on bad input, checked before any training starts."""
    from edgecompress.data import load_task
    from edgecompress.distill import demo_teacher, load_teacher

    profile = load_profile(cfg.device, cfg.profiles_dir)
    assert cfg.data is not None and cfg.labeled_fraction is not None
    task = load_task(cfg.data, unlabeled=cfg.unlabeled, labeled_fraction=cfg.labeled_fraction, seed=cfg.seed)
    teacher_path = Path(cfg.teacher) if cfg.teacher else demo_teacher(cfg.data)
    teacher = load_teacher(teacher_path, entry_point=cfg.entry_point, trust_checkpoint=cfg.trust_checkpoint)
    from edgecompress.distill import check_teacher_matches_task

    check_teacher_matches_task(teacher, task)
    return profile, task, teacher, teacher_path


def build(config: RunConfig | None = None, *, force: bool = False, quiet: bool = False, **options: Any) -> BuildReport:
    """Run the whole pipeline; ``options`` are RunConfig fields (CLI names) overriding ``config``."""
    t_start = time.perf_counter()
    cfg = dataclasses.replace(config or RunConfig(), **options).resolved()
    assert cfg.out is not None
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run_config.json", json.dumps(cfg.to_dict(), indent=2))

    profile, task, teacher, teacher_path = _prepare(cfg)
    cache = StageCache(run_dir, force=force)
    base_key = {
        "profile": profile.to_dict(),
        "data": [cfg.data, file_fingerprint(cfg.data), cfg.unlabeled, file_fingerprint(cfg.unlabeled)],
        "labeled_fraction": cfg.labeled_fraction,
        "seed": cfg.seed,
        "teacher": file_fingerprint(teacher_path),
    }

    # 1. select -------------------------------------------------------------------------
    from edgecompress.select import select_student

    spec_path = run_dir / "spec.json"
    cand_path = run_dir / "candidates.json"

    def do_select() -> StudentSpec:
        _log(f"[select] {profile.name}: budgets {profile.budgets.latency_budget_ms:g} ms, "
             f"{profile.budgets.peak_ram_budget_mb:g} MB RAM, {profile.budgets.model_size_budget_mb:g} MB model", quiet)
        spec = select_student(
            profile, task.input_shape, task.num_classes,
            latency_ms=cfg.latency_ms, memory_mb=cfg.memory_mb, teacher=teacher.module_or_none(),
        )
        spec.save(spec_path)
        cands = spec.extra.get("candidates", [])
        atomic_write_text(cand_path, json.dumps(cands, indent=2))
        return spec

    sel_key = {**base_key, "latency_ms": cfg.latency_ms, "memory_mb": cfg.memory_mb}
    spec = cache.run("select", sel_key, [spec_path], do_select, lambda: StudentSpec.load(spec_path))
    _log(f"[select] chose {spec.family} {spec.arch}", quiet)

    # 2. distill ------------------------------------------------------------------------
    from edgecompress.distill import DistillConfig, distill

    dist_dir = run_dir / "distill"
    ckpt_path = dist_dir / "checkpoint.json"
    dcfg = DistillConfig.for_method(cfg.method, epochs=cfg.epochs, seed=cfg.seed)

    def do_distill() -> Checkpoint:
        _log(f"[distill] method {cfg.method}, {dcfg.epochs} epochs", quiet)
        return distill(teacher, spec, task, dcfg, dist_dir, resume=True, progress=not quiet)

    dist_key = {**sel_key, "spec": spec.to_dict(), "distill": dataclasses.asdict(dcfg)}
    ckpt = cache.run("distill", dist_key, [ckpt_path], do_distill, lambda: Checkpoint.load(ckpt_path))

    # 3. export + parity gate --------------------------------------------------------------
    from edgecompress.export import ExportConfig, export

    exp_dir = run_dir / "export"
    formats, precisions = export_plan(profile)
    ecfg = ExportConfig(formats=tuple(formats), precisions=tuple(precisions))
    manifest = exp_dir / "artifacts.json"

    def do_export() -> list[ExportArtifact]:
        _log(f"[export] {','.join(formats)} x {','.join(precisions)} with parity gate", quiet)
        arts = export(ckpt_path, ecfg, exp_dir)
        atomic_write_text(manifest, json.dumps([a.to_dict() for a in arts], indent=2))
        return arts

    def load_export() -> list[ExportArtifact]:
        return [ExportArtifact.from_dict(d) for d in json.loads(manifest.read_text())]

    exp_key = {**dist_key, "ckpt": ckpt.sha256, "export": dataclasses.asdict(ecfg)}
    artifacts = cache.run("export", exp_key, [manifest], do_export, load_export)

    # 4. benchmark ----------------------------------------------------------------------
    from edgecompress.bench import benchmark

    bench_dir = run_dir / "bench"
    bench_manifest = bench_dir / "results.json"

    def do_bench() -> list[BenchmarkResult]:
        results = []
        for art in artifacts:
            _log(f"[bench] local {Path(art.path).name}", quiet)
            results.append(benchmark(art, "host", runs=cfg.runs, warmup=cfg.warmup, out_dir=bench_dir))
            if (cfg.serial or cfg.host) and art.format == "tflite":
                _log(f"[bench] {profile.name} {Path(art.path).name}", quiet)
                results.append(
                    benchmark(art, profile, serial=cfg.serial, host=cfg.host, runs=cfg.runs, warmup=cfg.warmup, out_dir=bench_dir)
                )
        atomic_write_text(bench_manifest, json.dumps([r.to_dict() for r in results], indent=2))
        return results

    def load_bench() -> list[BenchmarkResult]:
        return [BenchmarkResult.from_dict(d) for d in json.loads(bench_manifest.read_text())]

    bench_key = {**exp_key, "arts": [a.sha256 for a in artifacts], "runs": cfg.runs, "warmup": cfg.warmup,
                 "serial": cfg.serial, "host": cfg.host}
    benchmarks = cache.run("bench", bench_key, [bench_manifest], do_bench, load_bench)

    # 5. report -------------------------------------------------------------------------
    from edgecompress.summary import make_summary
    from edgecompress.report import render_report

    wall = time.perf_counter() - t_start
    summary = make_summary(cfg, profile, spec, ckpt, ckpt_path, artifacts, benchmarks, cache, wall, str(teacher_path))
    html = render_report(summary, run_dir)
    report = BuildReport(
        device=profile.name,
        spec=spec,
        checkpoint=str(ckpt_path),
        artifacts=tuple(artifacts),
        benchmarks=tuple(benchmarks),
        report_html=str(html),
        wall_s=round(wall, 2),
        stages={k: round(v, 2) for k, v in cache.timings.items()},
    )
    report.save(run_dir / "build.json")
    if not summary["verdict"].get("all_ok", True):
        _log("[build] warning: the student misses a budget: " + summary["verdict"].get("why", ""), quiet)
    _log(f"[build] done in {wall:.0f} s -> {html}", quiet)
    return report
