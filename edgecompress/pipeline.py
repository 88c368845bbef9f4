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
    strict_dumps,
)
from edgecompress.export.deploy import check_require
from edgecompress.export.worker import reap_work_folders
from edgecompress.profiles import DeviceProfile, load_profile
from edgecompress.runcheck import check_device, check_out_folder, with_budget_overrides
from edgecompress.runconfig import RunConfig
from edgecompress.runtimes import get_runtime
from edgecompress.stages import StageCache, file_fingerprint


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        import click

        click.echo(msg, err=True)


def export_plan(profile: DeviceProfile) -> tuple[list[str], list[str]]:
    """The format the profile's runtime executes, at each precision the profile lists."""
    return [get_runtime(profile.runtime.kind).artifact_format], list(profile.runtime.precisions)


def _prepare(cfg: RunConfig, profile: DeviceProfile, quiet: bool = True) -> tuple[Any, Any, Path, Any, dict[str, Any]]:
    """Load and cross-check teacher and data (everything that can fail on bad input), before
    any training and before the run folder is written. Also returns the preprocessing record
    (what is in force, where it came from, the normalization check)."""
    from edgecompress.distill import DistillConfig, demo_teacher, demo_teacher_info, load_teacher
    from edgecompress.distill.norm_check import check_normalization, mismatch_error
    from edgecompress.distill.preflight import check_inputs
    from edgecompress.preprocess_options import PreprocessOptions, teacher_file_options

    assert cfg.data is not None and cfg.labeled_fraction is not None
    overrides = {"epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
                 "teacher_feature": cfg.teacher_feature, "student_feature": cfg.student_feature,
                 "loss_weights": cfg.loss_weights}
    dcfg = DistillConfig(method=cfg.method, seed=cfg.seed, **{k: v for k, v in overrides.items() if v is not None})
    declared = cfg.preprocess_options()
    load_args: dict[str, Any] = {"entry_point": cfg.entry_point, "entry_point_kwargs": cfg.entry_point_kwargs,
                                 "trust_checkpoint": cfg.trust_checkpoint, "output": cfg.teacher_output}
    teacher = None
    if cfg.teacher is not None:
        teacher_path = Path(cfg.teacher)
        opts = declared.over(teacher_file_options(teacher_path)) if teacher_path.is_file() else declared
        if cfg.entry_point is None:  # checked before the (slower) data load; a factory may need the class count
            teacher = load_teacher(teacher_path, **load_args)
    else:
        teacher_path = demo_teacher(cfg.data)
        teacher = load_teacher(teacher_path)
        info = demo_teacher_info(cfg.data)
        # The student must see inputs normalized exactly as the teacher was trained.
        opts = declared.over(PreprocessOptions(mean=tuple(info["mean"]), std=tuple(info["std"]), source="demo teacher"))
    task = _load_task(cfg, opts, teacher)
    if teacher is None:
        teacher = load_teacher(teacher_path, **load_args, num_classes=task.num_classes)
    teacher.num_classes = task.num_classes
    # Teacher vs data (input size, classes, finite outputs on real images) and method vs data,
    # with a spec that only carries the task's shape: the chosen student is checked again after selection.
    probe_spec = StudentSpec(family="-", arch="-", input_shape=task.input_shape, num_classes=task.num_classes)
    check_inputs(teacher, probe_spec, task, dcfg)
    check = check_normalization(teacher, task, opts)
    record = {"preprocessing": task.preprocessing.to_dict(), "check": check.to_dict(), "auto_normalized": False}
    if check.better is not None:
        if not cfg.auto_normalize:
            raise mismatch_error(check, str(teacher_path))
        opts = check.better.over(opts)
        _log(f"[prepare] --auto-normalize: teacher accuracy {check.current['acc']:.1f}% -> "
             f"{check.candidates[0]['acc']:.1f}% with {check.candidates[0]['label']}; using it", quiet)
        task = _load_task(cfg, opts, teacher)
        record.update(preprocessing=task.preprocessing.to_dict(), auto_normalized=True)
    return task, teacher, teacher_path, dcfg, record


def _raw_input(artifacts: list[ExportArtifact], task: Any, exp_dir: Path, ckpt_path: Path, teacher: Any,
               quiet: bool) -> None:
    """``--raw-input``: the models that take camera frames, checked on raw pixels; written to
    export/raw_input.json (see export/raw_input.py)."""
    from edgecompress.export import ExportConfig
    from edgecompress.export.checkpoint import load_student
    from edgecompress.export.raw_input import raw_input_artifacts

    model = load_student(Checkpoint.load(ckpt_path), ckpt_path.parent, teacher.module, str(ckpt_path))
    rows = raw_input_artifacts(artifacts, task, model, ExportConfig().layout)
    for row in rows:
        _log(f"[export] {Path(row.path).name}: uint8 RGB frames in, top-1 agreement {row.agreement:.2f}% with "
             f"{Path(row.source).name} on {row.samples} raw frames (accuracy {row.acc:.1f}% vs {row.source_acc:.1f}%)", quiet)
    if not rows:
        _log("[export] --raw-input: no ONNX or fp32 TFLite artifact to fold the preprocessing into", quiet)
    atomic_write_text(exp_dir / "raw_input.json", strict_dumps([r.to_dict() for r in rows], indent=2))


def _prunable(teacher: Any, input_shape: tuple[int, int, int]) -> tuple[Any, str | None]:
    """The teacher's eager module when it can be channel-pruned, else (None, why)."""
    from edgecompress.students.pruning import NotPrunable, channel_graph

    module = teacher.module
    if module is None:
        return None, getattr(teacher, "lift_note", None) or f"a {teacher.format} teacher has no eager module to prune"
    try:
        channel_graph(module, input_shape)
    except NotPrunable as exc:
        return None, exc.reason
    return module, None


def _load_task(cfg: RunConfig, opts: Any, teacher: Any) -> Any:
    """The task, preprocessed as ``opts`` declare, at the teacher's input size when it has one."""
    from edgecompress.data import load_task

    declared_shape = getattr(teacher, "input_shape", None) if teacher is not None else None
    size = opts.input_size or (tuple(declared_shape[1:]) if declared_shape else None)
    assert cfg.data is not None and cfg.labeled_fraction is not None
    return load_task(cfg.data, unlabeled=cfg.unlabeled, labeled_fraction=cfg.labeled_fraction, seed=cfg.seed,
                     strict=cfg.strict, input_size=size, **opts.task_kwargs())


def build(config: RunConfig | None = None, *, force: bool = False, quiet: bool = False, **options: Any) -> BuildReport:
    """Run the whole pipeline; ``options`` are RunConfig fields (CLI names) overriding ``config``."""
    t_start = time.perf_counter()
    cfg = dataclasses.replace(config or RunConfig(), **options).resolved()
    assert cfg.out is not None
    run_dir = Path(cfg.out)
    # Validate everything, then write: cheap checks first (no teacher or data needed), then
    # teacher, data and the student choice; the run folder is created only after all passed.
    profile = with_budget_overrides(load_profile(cfg.device, cfg.profiles_dir), cfg)
    check_out_folder(run_dir)
    check_device(cfg, profile, export_plan(profile)[0][0])
    check_require(cfg.require, profile.runtime.precisions, profile.name)
    task, teacher, teacher_path, dcfg, prep_record = _prepare(cfg, profile, quiet)
    cache = StageCache(run_dir, force=force)
    base_key = {
        "edgecompress": __version__,
        "profile": profile.to_dict(),
        "data": [cfg.data, file_fingerprint(cfg.data), cfg.unlabeled, file_fingerprint(cfg.unlabeled)],
        "labeled_fraction": cfg.labeled_fraction,
        "seed": cfg.seed,
        "teacher": [file_fingerprint(teacher_path), cfg.entry_point, cfg.entry_point_kwargs, cfg.teacher_output],
        "preprocessing": task.preprocessing.to_dict(),
    }

    # 1. select -------------------------------------------------------------------------
    from edgecompress.select import finalize, run_selection

    spec_path = run_dir / "spec.json"
    cand_path = run_dir / "candidates.json"

    def choose() -> tuple[StudentSpec, list[dict[str, Any]]]:
        from edgecompress.cost.reference import teacher_reference
        from edgecompress.select import DEFAULT_COMPRESS

        ref = teacher_reference(teacher, task.input_shape)
        prunable, why = _prunable(teacher, task.input_shape)
        if prunable is None:
            _log(f"[select] the pruned-teacher family is not offered ({why}); choosing among the student families", quiet)
        _log(f"[select] {profile.name}: budgets {profile.budgets.latency_budget_ms:g} ms, "
             f"{profile.budgets.peak_ram_budget_mb:g} MB RAM, {profile.budgets.model_size_budget_mb:g} MB model; "
             f"compression >= {cfg.compress or f'{DEFAULT_COMPRESS:g}x'} vs the teacher"
             + (f" ({ref.macs / 1e6:.1f} M MACs, {ref.params / 1e6:.2f} M params)" if ref else " (cost unknown)"), quiet)
        sel = run_selection(
            profile, task.input_shape, task.num_classes,
            latency_ms=cfg.latency_ms, memory_mb=cfg.memory_mb, teacher=prunable,
            teacher_cost=ref, compress=cfg.compress, families=cfg.families,
        )
        spec = finalize(sel, profile)
        return spec, [{**c.row(), "chosen": c is sel.choice} for c in sel.candidates]

    sel_key = {**base_key, "latency_ms": cfg.latency_ms, "memory_mb": cfg.memory_mb, "compress": cfg.compress,
               **({"families": list(cfg.families)} if cfg.families else {})}
    # Selection fails on budgets nothing fits, and the chosen student is checked against the
    # data: both before the run folder is touched (selection takes about a second).
    from edgecompress.distill.preflight import check_inputs

    chosen = None if cache.is_fresh("select", sel_key, [spec_path, cand_path]) else choose()
    if chosen is not None:
        check_inputs(teacher, chosen[0], task, dcfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run_config.json", strict_dumps(cfg.to_dict(), indent=2))
    atomic_write_text(run_dir / "preprocessing.json", strict_dumps(prep_record, indent=2))
    reap_work_folders(run_dir / "export")

    def do_select(_resume: bool) -> StudentSpec:
        spec, rows = chosen or choose()
        atomic_write_text(cand_path, strict_dumps(rows, indent=2))
        spec.save(spec_path)
        return spec

    spec = cache.run("select", sel_key, [spec_path, cand_path], do_select, lambda: StudentSpec.load(spec_path))
    ratio = spec.extra.get("select", {}).get("compression_x")
    _log(f"[select] chose {spec.family} {spec.arch}" + (f": {ratio:.1f}x fewer MACs than the teacher" if ratio else ""), quiet)

    # 2. distill ------------------------------------------------------------------------
    from edgecompress.distill import distill

    dist_dir = run_dir / "distill"
    ckpt_path = dist_dir / "checkpoint.json"
    if chosen is None:
        check_inputs(teacher, spec, task, dcfg)  # the saved student against the data, before training

    def do_distill(resume: bool) -> Checkpoint:
        _log(f"[distill] method {cfg.method}, {dcfg.epochs} epochs" + (" (resuming)" if resume else ""), quiet)
        if not resume and dist_dir.exists():
            shutil.rmtree(dist_dir)  # inputs changed: the old training state belongs to another run
        return distill(teacher, spec, task, dcfg, dist_dir, resume=resume, progress=not quiet)

    dist_key = {**sel_key, "spec": spec.to_dict(), "distill": _jsonable(dcfg)}
    ckpt = cache.run("distill", dist_key, [ckpt_path], do_distill, lambda: Checkpoint.load(ckpt_path))

    # 3. export + parity gate --------------------------------------------------------------
    from edgecompress.export import ExportConfig, export
    from edgecompress.export.deploy import choose_deployed, read_targets, require_deployable
    from edgecompress.summary import deployed_target

    exp_dir = run_dir / "export"
    formats, precisions = export_plan(profile)
    # An int8 miss (after the accuracy-aware attempts) withholds that file but not the build.
    ecfg = ExportConfig(formats=tuple(formats), precisions=tuple(precisions), fail_on_miss=False)
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
    if cfg.raw_input:
        _raw_input(artifacts, task, exp_dir, ckpt_path, teacher, quiet)
    deployment = choose_deployed(artifacts, read_targets(exp_dir), deployed_target(profile))
    _log(f"[export] deploy {deployment.reason}", quiet)
    require_deployable(deployment, cfg.require)

    # 4. benchmark ----------------------------------------------------------------------
    from edgecompress.bench import benchmark

    bench_dir = run_dir / "bench"
    bench_manifest = bench_dir / "results.json"

    def do_bench(_resume: bool) -> list[BenchmarkResult]:
        results = []
        for art in artifacts:
            _log(f"[bench] local {Path(art.path).name}", quiet)
            timing: dict[str, Any] = {"runs": cfg.runs, "warmup": cfg.warmup, "sustained_s": cfg.sustained, "cooldown_s": cfg.cooldown}
            results.append(benchmark(art, "host", out_dir=bench_dir, **timing))
            if (cfg.serial or cfg.host) and art.format == formats[0]:  # what the device runtime executes
                _log(f"[bench] {profile.name} {Path(art.path).name}", quiet)
                results.append(
                    benchmark(art, profile, serial=cfg.serial, host=cfg.host, out_dir=bench_dir, **timing)
                )
        if cfg.host:  # the parity gate again, on the board's own kernels (adb phones have no python)
            from edgecompress.bench.api import make_runner
            from edgecompress.bench.build_parity import board_parity, parity_set

            x, y, ref = parity_set(ckpt_path, ecfg.parity_samples, teacher=teacher.module)
            with make_runner(profile.connection.runner, profile, host=cfg.host) as board:
                results = board_parity(results, artifacts, board, x, y, ref, ecfg, log=lambda m: _log(m, quiet))
        atomic_write_text(bench_manifest, json.dumps([r.to_dict() for r in results], indent=2))
        return results

    def load_bench() -> list[BenchmarkResult]:
        return [BenchmarkResult.from_dict(d) for d in json.loads(bench_manifest.read_text())]

    bench_key = {**exp_key, "arts": [a.sha256 for a in artifacts], "runs": cfg.runs, "warmup": cfg.warmup,
                 "serial": cfg.serial, "host": cfg.host,
                 # Only when used, so that runs cached before these options existed stay fresh.
                 **({"sustained": cfg.sustained, "cooldown": cfg.cooldown} if cfg.sustained or cfg.cooldown else {})}
    benchmarks = cache.run("bench", bench_key, [bench_manifest], do_bench, load_bench)

    # 5. report -------------------------------------------------------------------------
    from edgecompress.report import render_report
    from edgecompress.summary import make_summary

    wall = time.perf_counter() - t_start
    candidates = json.loads(cand_path.read_text())
    summary = make_summary(cfg, profile, spec, candidates, ckpt, ckpt_path, artifacts, benchmarks, cache, wall, str(teacher_path),
                           deployment=deployment)
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
