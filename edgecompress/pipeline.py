"""`build`: profile -> select -> distill -> export + parity -> benchmark -> report.

Glue only: each stage is a library call whose typed output is saved in the run directory, and
:class:`~edgecompress.stages.StageCache` skips stages whose inputs did not change.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from edgecompress import __version__
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


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        import click

        click.echo(msg, err=True)


def export_plan(profile: DeviceProfile) -> tuple[list[str], list[str]]:
    """The format the profile's runtime executes, at each precision the profile lists."""
    fmt = "tflite" if profile.runtime.kind == "tflite-xnnpack" else "onnx"
    return [fmt], list(profile.runtime.precisions)


def _prepare(cfg: RunConfig) -> tuple[DeviceProfile, Any, Any, Path, Any]:
    """Load and cross-check everything that can fail on bad input, before any training."""
    from edgecompress.artifacts import StudentSpec
    from edgecompress.data import load_task
    from edgecompress.distill import DistillConfig, demo_teacher, demo_teacher_info, load_teacher
    from edgecompress.distill.preflight import check_inputs

    profile = load_profile(cfg.device, cfg.profiles_dir)
    assert cfg.data is not None and cfg.labeled_fraction is not None
    overrides = {"epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch}
    dcfg = DistillConfig(method=cfg.method, seed=cfg.seed, **{k: v for k, v in overrides.items() if v is not None})
    norm: dict[str, Any] = {}
    if cfg.teacher is not None:  # a user's teacher file is checked before the (slower) data load
        teacher_path = Path(cfg.teacher)
        teacher = load_teacher(teacher_path, entry_point=cfg.entry_point, trust_checkpoint=cfg.trust_checkpoint)
    else:
        teacher_path = demo_teacher(cfg.data)
        teacher = load_teacher(teacher_path)
        info = demo_teacher_info(cfg.data)
        # The student must see inputs normalized exactly as the teacher was trained.
        norm = {"mean": tuple(info["mean"]), "std": tuple(info["std"])}
    task = load_task(cfg.data, unlabeled=cfg.unlabeled, labeled_fraction=cfg.labeled_fraction, seed=cfg.seed, **norm)
    # Teacher vs data (input size, classes) and method vs data, with a spec that only carries
    # the task's shape: the chosen student is checked again after selection.
    probe_spec = StudentSpec(family="-", arch="-", input_shape=task.input_shape, num_classes=task.num_classes)
    check_inputs(teacher, probe_spec, task, dcfg)
    return profile, task, teacher, teacher_path, dcfg


def build(config: RunConfig | None = None, *, force: bool = False, quiet: bool = False, **options: Any) -> BuildReport:
    """Run the whole pipeline; ``options`` are RunConfig fields (CLI names) overriding ``config``."""
    t_start = time.perf_counter()
    cfg = dataclasses.replace(config or RunConfig(), **options).resolved()
    assert cfg.out is not None
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run_config.json", json.dumps(cfg.to_dict(), indent=2))

    profile, task, teacher, teacher_path, dcfg = _prepare(cfg)
    cache = StageCache(run_dir, force=force)
    base_key = {
        "edgecompress": __version__,
        "profile": profile.to_dict(),
        "data": [cfg.data, file_fingerprint(cfg.data), cfg.unlabeled, file_fingerprint(cfg.unlabeled)],
        "labeled_fraction": cfg.labeled_fraction,
        "seed": cfg.seed,
        "teacher": file_fingerprint(teacher_path),
    }

    # 1. select -------------------------------------------------------------------------
    from edgecompress.select import finalize, run_selection

    spec_path = run_dir / "spec.json"
    cand_path = run_dir / "candidates.json"

    def do_select(_resume: bool) -> StudentSpec:
        from edgecompress.cost.reference import teacher_reference
        from edgecompress.select import DEFAULT_COMPRESS

        ref = teacher_reference(teacher, task.input_shape)
        _log(f"[select] {profile.name}: budgets {profile.budgets.latency_budget_ms:g} ms, "
             f"{profile.budgets.peak_ram_budget_mb:g} MB RAM, {profile.budgets.model_size_budget_mb:g} MB model; "
             f"compression >= {cfg.compress or f'{DEFAULT_COMPRESS:g}x'} vs the teacher"
             + (f" ({ref.macs / 1e6:.1f} M MACs, {ref.params / 1e6:.2f} M params)" if ref else " (cost unknown)"), quiet)
        sel = run_selection(
            profile, task.input_shape, task.num_classes,
            latency_ms=cfg.latency_ms, memory_mb=cfg.memory_mb, teacher=teacher.module,
            teacher_cost=ref, compress=cfg.compress,
        )
        spec = finalize(sel, profile)
        rows = [{**c.row(), "chosen": c is sel.choice} for c in sel.candidates]
        atomic_write_text(cand_path, json.dumps(rows, indent=2))
        spec.save(spec_path)
        return spec

    sel_key = {**base_key, "latency_ms": cfg.latency_ms, "memory_mb": cfg.memory_mb, "compress": cfg.compress}
    spec = cache.run("select", sel_key, [spec_path, cand_path], do_select, lambda: StudentSpec.load(spec_path))
    ratio = spec.extra.get("select", {}).get("compression_x")
    _log(f"[select] chose {spec.family} {spec.arch}" + (f": {ratio:.1f}x fewer MACs than the teacher" if ratio else ""), quiet)

    # 2. distill ------------------------------------------------------------------------
    from edgecompress.distill import distill
    from edgecompress.distill.preflight import check_inputs

    dist_dir = run_dir / "distill"
    ckpt_path = dist_dir / "checkpoint.json"
    check_inputs(teacher, spec, task, dcfg)  # the chosen student against the data, before training

    def do_distill(resume: bool) -> Checkpoint:
        _log(f"[distill] method {cfg.method}, {dcfg.epochs} epochs" + (" (resuming)" if resume else ""), quiet)
        if not resume and dist_dir.exists():
            shutil.rmtree(dist_dir)  # inputs changed: the old training state belongs to another run
        return distill(teacher, spec, task, dcfg, dist_dir, resume=resume, progress=not quiet)

    dist_key = {**sel_key, "spec": spec.to_dict(), "distill": _jsonable(dcfg)}
    ckpt = cache.run("distill", dist_key, [ckpt_path], do_distill, lambda: Checkpoint.load(ckpt_path))

    # 3. export + parity gate --------------------------------------------------------------
    from edgecompress.export import ExportConfig, export

    exp_dir = run_dir / "export"
    formats, precisions = export_plan(profile)
    ecfg = ExportConfig(formats=tuple(formats), precisions=tuple(precisions))
    manifest = exp_dir / "artifacts.json"

    def do_export(_resume: bool) -> list[ExportArtifact]:
        _log(f"[export] {','.join(formats)} x {','.join(precisions)} with parity gate", quiet)
        arts = export(ckpt_path, ecfg, exp_dir, teacher=teacher.module, progress=not quiet)
        atomic_write_text(manifest, json.dumps([a.to_dict() for a in arts], indent=2))
        return arts

    def load_export() -> list[ExportArtifact]:
        return [ExportArtifact.from_dict(d) for d in json.loads(manifest.read_text())]

    exp_key = {**dist_key, "ckpt": ckpt.sha256, "export": _jsonable(ecfg)}
    artifacts = cache.run("export", exp_key, [manifest], do_export, load_export)

    # 4. benchmark ----------------------------------------------------------------------
    from edgecompress.bench import benchmark

    bench_dir = run_dir / "bench"
    bench_manifest = bench_dir / "results.json"

    def do_bench(_resume: bool) -> list[BenchmarkResult]:
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
    from edgecompress.report import render_report
    from edgecompress.summary import make_summary

    wall = time.perf_counter() - t_start
    candidates = json.loads(cand_path.read_text())
    summary = make_summary(cfg, profile, spec, candidates, ckpt, ckpt_path, artifacts, benchmarks, cache, wall, str(teacher_path))
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
