"""`build`: profile -> select -> distill -> export + parity -> benchmark -> report.

Glue only: each stage is declared in build_stages.py (name, key, outputs, run, load), its typed
output saved in the run directory; :class:`~edgecompress.stages.StageCache` skips stages whose
inputs did not change.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any

from edgecompress import __version__
from edgecompress.artifacts import (
    Checkpoint,
    ExportArtifact,
    StudentSpec,
    atomic_write_text,
    strict_dumps,
)
from edgecompress.build_report import BuildReport
from edgecompress.build_stages import (
    BuildContext,
    Choice,
    bench_stage,
    distill_stage,
    export_plan,
    export_stage,
    select_stage,
)
from edgecompress.export.deploy import check_require
from edgecompress.export.worker import reap_work_folders
from edgecompress.profiles import DeviceProfile, load_profile
from edgecompress.runcheck import check_device, check_out_folder, with_budget_overrides
from edgecompress.runconfig import RunConfig
from edgecompress.stages import StageCache, file_fingerprint


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        import click

        click.echo(msg, err=True)


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
    ctx = BuildContext(cfg, profile, task, teacher, dcfg, run_dir, base_key, lambda m: _log(m, quiet))
    from edgecompress.distill.preflight import check_inputs

    # 1. select: fails on budgets nothing fits, and the chosen student is checked against the
    # data, both before the run folder is touched (selection takes about a second).
    choose = functools.cache(lambda: _choose(ctx))  # made once: while validating, or when the stage runs
    sel = select_stage(ctx, choose)
    selecting = not cache.fresh(sel)
    if selecting:
        check_inputs(teacher, choose()[0], task, dcfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run_config.json", strict_dumps(cfg.to_dict(), indent=2))
    atomic_write_text(run_dir / "preprocessing.json", strict_dumps(prep_record, indent=2))
    reap_work_folders(run_dir / "export")
    spec = cache.execute(sel)
    ratio = spec.selection.compression_x if spec.selection else None
    _log(f"[select] chose {spec.family} {spec.arch}" + (f": {ratio:.1f}x fewer MACs than the teacher" if ratio else ""), quiet)

    # 2. distill
    if not selecting:
        check_inputs(teacher, spec, task, dcfg)  # the saved student against the data, before training
    dist = distill_stage(ctx, sel, spec, progress=not quiet)
    ckpt = cache.execute(dist)
    ckpt_path = dist.outputs[0]

    # 3. export + parity gate: an int8 miss (after the accuracy-aware attempts) withholds that
    # file but not the build; the runtime's provider says which artifact is deployed.
    from edgecompress.export import ExportConfig
    from edgecompress.export.deploy import choose_deployed, read_targets, require_deployable
    from edgecompress.summary import deployed_target

    formats, precisions = export_plan(profile)
    ecfg = ExportConfig(formats=tuple(formats), precisions=tuple(precisions), fail_on_miss=False, qat=cfg.qat)
    exp = export_stage(ctx, dist, ckpt, ecfg, progress=not quiet)
    artifacts = cache.execute(exp)
    exp_dir = exp.outputs[0].parent
    if cfg.raw_input:
        _raw_input(artifacts, task, exp_dir, ckpt_path, teacher, quiet)
    deployment = choose_deployed(artifacts, read_targets(exp_dir), deployed_target(profile, spec, cfg.require))
    _log(f"[export] deploy {deployment.reason}", quiet)
    require_deployable(deployment, cfg.require)

    # 4. benchmark
    benchmarks = cache.execute(bench_stage(ctx, exp, artifacts, ckpt_path, ecfg))

    # 5. report
    from edgecompress.report import render_report
    from edgecompress.summary import StageOutputs, make_summary

    wall = time.perf_counter() - t_start
    candidates = json.loads(sel.outputs[1].read_text())
    outputs = StageOutputs(cfg, profile, spec, candidates, ckpt, ckpt_path, artifacts, benchmarks, str(teacher_path), deployment,
                           predicted_ms=_predicted_by_precision(ctx, spec))
    summary = make_summary(outputs, cache, wall)
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
        summary=summary,
    )
    report.save(run_dir / "build.json")
    if not summary.verdict.all_ok:
        _log("[build] warning: the student misses a budget: " + summary.verdict.why, quiet)
    _log(f"[build] done in {wall:.0f} s -> {html}", quiet)
    return report


def _predicted_by_precision(ctx: BuildContext, spec: StudentSpec) -> dict[str, float]:
    """The student's predicted latency on the device at fp32 and int8 (the report's attempts)."""
    from edgecompress.cost.calibration import LatencyPredictor
    from edgecompress.cost.estimate import spec_cost

    # A pruned-teacher spec was made from the teacher's eager module (selection checked it can
    # be pruned): cost it from that module, without tracing the channel graph again.
    teacher = ctx.teacher.module if spec.family == "pruned-teacher" else None
    if spec.family == "pruned-teacher" and teacher is None:
        return {}
    features = spec_cost(spec, teacher).features
    pred = LatencyPredictor.for_profile(ctx.profile)
    return {p: pred.predict(features, ctx.profile.runtime.kind, p) for p in ("fp32", "int8")}


def _choose(ctx: BuildContext) -> Choice:
    """Cost every candidate student for the device and choose (see select.py)."""
    from edgecompress.cost.reference import teacher_reference
    from edgecompress.select import DEFAULT_COMPRESS, finalize, run_selection

    cfg, profile, task = ctx.cfg, ctx.profile, ctx.task
    ref = teacher_reference(ctx.teacher, task.input_shape)
    prunable, why = _prunable(ctx.teacher, task.input_shape)
    if prunable is None:
        ctx.log(f"[select] the pruned-teacher family is not offered ({why}); choosing among the student families")
    b = profile.budgets
    ctx.log(f"[select] {profile.name}: budgets {b.latency_budget_ms:g} ms, {b.peak_ram_budget_mb:g} MB RAM, "
            f"{b.model_size_budget_mb:g} MB model; compression >= {cfg.compress or f'{DEFAULT_COMPRESS:g}x'} vs the teacher"
            + (f" ({ref.macs / 1e6:.1f} M MACs, {ref.params / 1e6:.2f} M params)" if ref else " (cost unknown)"))
    sel = run_selection(profile, task.input_shape, task.num_classes, latency_ms=cfg.latency_ms, memory_mb=cfg.memory_mb,
                        teacher=prunable, teacher_cost=ref, compress=cfg.compress, families=cfg.families)
    spec = finalize(sel, profile)
    return spec, [{**c.row(), "chosen": c is sel.choice} for c in sel.candidates]
