"""Compression table: students >= 8x cheaper than the teacher, every method, equal optimizer steps.

    .venv/bin/python benchmarks/compression_table.py [--seeds 3] [--tasks shapes,digits] [--jobs 2]

For each built-in task (shapes with its style-shifted ``shapes-pool``; digits, whose unlabeled
data is the rest of its training split) the demo teacher (trained on all labels) teaches two
students chosen by ``select`` at a compression target of 8x in MACs -- the largest channel-pruned
copy of the teacher, and the largest ``mobilenet`` -- by every method, at 10% and 2% of the
labels, over several seeds. Every run takes the same number of optimizer steps with the same
labeled batch (and the same pool batch where a method uses the pool; label-free ANC gets both
batches' rows from its single stream). References per student: supervised training on *all*
labels and label-free ANC (no labels at all).

Reported per cell: test accuracy mean +- std over seeds (population std), top-1 agreement with
the teacher, and, for the default method against the best non-adversarial method, the per-seed
paired differences. Cells run in ``--jobs`` processes with one thread each (the runs are
independent; one thread per process uses two cores better than two threads in one process).
Writes ``benchmarks/results/compression_table.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The task string, the teacher's dataset, the pool, and the schedule. shapes uses smaller
# val/test splits than the default (the train split, and so the teacher, are the same images:
# each split has its own seed stream); the teacher's outputs on them are recomputed per run.
TASKS: dict[str, dict[str, Any]] = {
    "shapes": {"data": "shapes:val=1000,test=2000", "teacher": "shapes", "pool": "shapes-pool",
               "epochs": 8, "steps": 30, "batch": 64},
    "digits": {"data": "digits", "teacher": "digits", "pool": None, "epochs": 8, "steps": 30, "batch": 32},
}
STUDENTS = ("pruned-teacher", "family")
# The family student: the first of these with a candidate at >= COMPRESS x. resnet first: plain
# 3x3 convolutions train ~2x faster per MAC on a CPU than mobilenet's depthwise ones (the shapes
# cells dominate the table's time); the small digits teacher has no resnet that far below it.
FAMILY_ORDER = ("resnet", "mobilenet")
METHODS = ("supervised", "kd", "kd+unlabeled", "fm", "anc", "anc+unlabeled", "anc+align")
FRACTIONS = (0.1, 0.02)
ADVERSARIAL = {"anc", "anc+unlabeled", "anc+align", "anc-labelfree"}
COMPRESS = 8.0


def cells(tasks: list[str], seeds: int) -> list[dict[str, Any]]:
    out = []
    for task in tasks:
        for student in STUDENTS:
            for seed in range(seeds):
                for f in FRACTIONS:
                    out += [{"task": task, "student": student, "fraction": f, "method": m, "seed": seed} for m in METHODS]
                out.append({"task": task, "student": student, "fraction": 1.0, "method": "supervised", "seed": seed})
                out.append({"task": task, "student": student, "fraction": 0.0, "method": "anc-labelfree", "seed": seed})
    return out


def student_spec(family: str, task: Any, teacher_module: Any) -> Any:
    """The largest candidate of ``family`` (``"family"``: of the first in FAMILY_ORDER that has
    one) at >= COMPRESS x fewer MACs, with the device budgets lifted."""
    from edgecompress.errors import SelectError
    from edgecompress.profiles import load_profile
    from edgecompress.select import select_student

    def pick(fam: str) -> Any:
        return select_student(load_profile("host"), task.input_shape, task.num_classes, latency_ms=1e6, memory_mb=1e6,
                              size_mb=1e6, families=(fam,), teacher=teacher_module, compress=COMPRESS)

    fams = FAMILY_ORDER if family == "family" else (family,)
    for fam in fams[:-1]:
        try:
            return pick(fam)
        except SelectError:
            continue
    return pick(fams[-1])


def run_cell(cell: dict[str, Any], work: Path) -> dict[str, Any]:
    import torch

    from edgecompress.data import load_task
    from edgecompress.distill import DistillConfig, demo_teacher, demo_teacher_info, distill, load_teacher

    torch.set_num_threads(1)
    t = TASKS[cell["task"]]
    info = demo_teacher_info(t["teacher"])
    teacher = load_teacher(demo_teacher(t["teacher"], progress=False))
    norm = {"mean": tuple(info["mean"]), "std": tuple(info["std"])}
    frac = cell["fraction"] or 1.0
    task = load_task(t["data"], unlabeled=t["pool"], labeled_fraction=frac, seed=cell["seed"], progress=False, **norm)
    spec = student_spec(cell["student"], task, teacher.module)
    b = t["batch"]
    cfg = DistillConfig(method=cell["method"], epochs=t["epochs"], steps_per_epoch=t["steps"], batch_size=b,
                        unlabeled_batch_size=2 * b if cell["method"] == "anc-labelfree" else b, seed=cell["seed"])
    name = f"{cell['task']}-{cell['student']}-{cell['method']}-{cell['fraction']}-{cell['seed']}"
    t0 = time.perf_counter()
    ck = distill(teacher, spec, task, cfg, work / name, progress=False)
    m = ck.metrics
    sel = spec.selection
    assert sel is not None and sel.teacher is not None  # student_spec selects against the teacher
    curve = [json.loads(line)["val_acc"] for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    return {**cell, "val_curve": curve, "family": spec.family, "acc": m["test_acc"], "agreement": m["test_agreement"], "teacher_acc": m["teacher_test_acc"],
            "student_macs": spec.cost.macs, "student_params": spec.cost.params, "student_label": spec.label,
            "compression_x": sel.compression_x, "teacher_macs": sel.teacher.macs,
            "teacher_params": sel.teacher.params, "steps": int(m["steps"]),
            "run_s": round(time.perf_counter() - t0, 1)}


def worker(part: int, jobs: int, tasks: list[str], seeds: int, work: Path) -> None:
    todo = cells(tasks, seeds)[part::jobs]
    out = work / f"part-{part}.jsonl"
    done = {json.dumps({k: r[k] for k in ("task", "student", "fraction", "method", "seed")}, sort_keys=True)
            for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    for cell in todo:
        if json.dumps(cell, sort_keys=True) in done:
            continue  # resumable: a finished cell is never re-run
        r = run_cell(cell, work)
        with out.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        print(f"[{part}] {cell['task']} {cell['student']} f={cell['fraction']} {cell['method']} seed={cell['seed']}: "
              f"acc {r['acc']:.4f} agree {r['agreement']:.4f} ({r['run_s']} s)", flush=True)


# --------------------------------------------------------------------------- aggregate


def aggregate(results: list[dict[str, Any]], default_method: str) -> dict[str, Any]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["task"], r["student"], r["fraction"], r["method"]), []).append(r)
    rows = []
    for (task, student, frac, method), rs in groups.items():
        accs = [r["acc"] for r in sorted(rs, key=lambda r: r["seed"])]
        rows.append({"task": task, "student": student, "student_label": rs[0]["student_label"],
                     "student_macs": rs[0]["student_macs"], "student_params": rs[0]["student_params"],
                     "compression_x": rs[0]["compression_x"], "labeled_fraction": frac, "method": method,
                     "steps": rs[0]["steps"], "seeds": len(rs), "acc_mean": statistics.fmean(accs),
                     "acc_std": statistics.pstdev(accs), "acc_all": accs,
                     "agreement_mean": statistics.fmean(r["agreement"] for r in rs),
                     "run_s_mean": statistics.fmean(r["run_s"] for r in rs)})
    teacher = {}
    for task in dict.fromkeys(r["task"] for r in results):
        rs = [r for r in results if r["task"] == task]
        teacher[task] = {"acc": statistics.fmean(r["teacher_acc"] for r in rs), "macs": rs[0]["teacher_macs"],
                         "params": rs[0]["teacher_params"]}
    paired, targets = [], []
    for task in teacher:
        for student in dict.fromkeys(r["student"] for r in results if r["task"] == task):
            for frac in FRACTIONS:
                def cell(m: str, task: str = task, student: str = student, frac: float = frac) -> dict[str, Any] | None:
                    return next((r for r in rows if (r["task"], r["student"], r["labeled_fraction"], r["method"])
                                 == (task, student, frac, m)), None)

                here = [r for r in rows if (r["task"], r["student"], r["labeled_fraction"]) == (task, student, frac)]
                if not here:
                    continue
                d = cell(default_method)
                # The default against the best other method of each kind: non-adversarial (the
                # strong simple baseline) and adversarial (the papers' methods).
                for kind in (False, True):
                    pool = [r for r in here if (r["method"] in ADVERSARIAL) == kind and r["method"] != default_method]
                    rival = max(pool, key=lambda r: r["acc_mean"]) if pool else None
                    if d and rival:
                        paired.append(_paired(task, student, frac, default_method, rival["method"], results))
                best = max(here, key=lambda r: r["acc_mean"])
                sup, kdu = cell("supervised"), cell("kd+unlabeled")
                t_acc = teacher[task]["acc"]
                targets.append({
                    "task": task, "student": student, "labeled_fraction": frac, "best_method": best["method"],
                    "best_vs_teacher_pt": round(100 * (best["acc_mean"] - t_acc), 2),
                    "best_ge_teacher_minus_1pt": best["acc_mean"] >= t_acc - 0.01,
                    "default_vs_kd_unlabeled_pt": round(100 * (d["acc_mean"] - kdu["acc_mean"]), 2) if d and kdu else None,
                    "default_vs_supervised_pt": round(100 * (d["acc_mean"] - sup["acc_mean"]), 2) if d and sup else None,
                })
            lf = next((r for r in rows if (r["task"], r["student"], r["method"]) == (task, student, "anc-labelfree")), None)
            sa = next((r for r in rows if (r["task"], r["student"], r["labeled_fraction"], r["method"])
                       == (task, student, 1.0, "supervised")), None)
            if lf and sa:
                targets.append({"task": task, "student": student, "labelfree_vs_supervised_all_labels_pt":
                                round(100 * (lf["acc_mean"] - sa["acc_mean"]), 2)})
    # Has supervised training on all labels plateaued? Validation accuracy gained over the last
    # quarter of the schedule, per student (mean over seeds).
    plateau = []
    for task in teacher:
        for student in dict.fromkeys(r["student"] for r in results if r["task"] == task):
            rs = [r for r in results if (r["task"], r["student"], r["fraction"], r["method"]) == (task, student, 1.0, "supervised")]
            if rs:
                gains = [100 * (r["val_curve"][-1] - r["val_curve"][(3 * len(r["val_curve"])) // 4 - 1]) for r in rs]
                plateau.append({"task": task, "student": student, "val_gain_last_quarter_pt": round(statistics.fmean(gains), 2)})
    order = {m: i for i, m in enumerate((*METHODS, "anc-labelfree"))}
    rows.sort(key=lambda r: (r["task"], r["student"], -r["labeled_fraction"] if r["labeled_fraction"] != 1.0 else -2,
                             order.get(r["method"], 99)))
    return {"teacher": teacher, "rows": rows, "default_method": default_method, "paired": paired, "targets": targets,
            "supervised_all_labels_plateau": plateau}


def _paired(task: str, student: str, frac: float, a: str, b: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    def by_seed(m: str) -> dict[int, float]:
        return {r["seed"]: r["acc"] for r in results
                if (r["task"], r["student"], r["fraction"], r["method"]) == (task, student, frac, m)}

    ra, rb = by_seed(a), by_seed(b)
    diffs = [100 * (ra[s] - rb[s]) for s in sorted(set(ra) & set(rb))]
    return {"task": task, "student": student, "labeled_fraction": frac, "a": a, "b": b,
            "diff_mean": round(statistics.fmean(diffs), 2) if diffs else None,
            "diff_std": round(statistics.pstdev(diffs), 2) if diffs else None, "diffs_pt": [round(d, 2) for d in diffs]}


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Compression table (edgecompress)", "", f"Command: `{res['command']}`  ", f"Machine: {res['machine']}  ",
             f"Compute: {res['cell_s_total'] / 60:.0f} core-minutes over {res['cells']} runs (one thread each)", ""]
    for task, t in res["teacher"].items():
        sched = TASKS[task]
        lines += [f"## {task}: teacher {100 * t['acc']:.1f}% ({t['macs'] / 1e6:.1f} M MACs, {t['params'] / 1e6:.2f} M params)", "",
                  f"{sched['epochs'] * sched['steps']} optimizer steps per run, labeled batch {sched['batch']} "
                  f"(+ {sched['batch']} pool rows for methods that use the pool).", "",
                  "| student | x MACs | labels | method | test acc % (mean ± std) | seeds | agreement % |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            if r["task"] != task:
                continue
            frac = "none" if r["labeled_fraction"] == 0 else f"{100 * r['labeled_fraction']:g}%"
            lines.append(f"| {r['student']} {r['student_label']} | {r['compression_x']:.1f} | {frac} | {r['method']} | "
                         f"{100 * r['acc_mean']:.1f} ± {100 * r['acc_std']:.1f} | {r['seeds']} | {100 * r['agreement_mean']:.1f} |")
        lines.append("")
    lines += ["## Paired per-seed differences, points: the default method minus the best other non-adversarial method, "
              "and minus the best adversarial method", "",
              "| task | student | labels | a | b | mean | std | per seed |", "|---|---|---|---|---|---|---|---|"]
    for p in res["paired"]:
        lines.append(f"| {p['task']} | {p['student']} | {100 * p['labeled_fraction']:g}% | {p['a']} | {p['b']} | "
                     f"{p['diff_mean']:+.2f} | {p['diff_std']:.2f} | {', '.join(f'{d:+.1f}' for d in p['diffs_pt'])} |")
    lines += ["", "## Has supervised training on all labels plateaued?", ""]
    for p in res["supervised_all_labels_plateau"]:
        lines.append(f"- {p['task']} {p['student']}: validation accuracy gained over the last quarter of the schedule: "
                     f"{p['val_gain_last_quarter_pt']:+.2f} pt")
    lines += ["", "## Targets", ""]
    for t in res["targets"]:
        lines.append("- " + ", ".join(f"{k}: {v}" for k, v in t.items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", default="shapes,digits")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/edgecompress-compression-table")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--smoke", action="store_true", help="2 epochs x 2 steps: checks the script runs (numbers meaningless)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--resume", action="store_true", help="keep the cells an interrupted run finished in --work "
                    "(default: start from an empty --work, so every figure comes from this run)")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    if args.smoke:
        for t in TASKS.values():
            t.update(epochs=2, steps=2)
    work = Path(args.work)
    if args.worker is not None:
        worker(args.worker, args.jobs, tasks, args.seeds, work)
        return
    if not args.resume and work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    # Teachers and data caches first, in one process, so the workers never race to build them.
    from edgecompress.distill import demo_teacher

    for task in tasks:
        demo_teacher(TASKS[task]["teacher"], progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(i), "--jobs", str(args.jobs), "--tasks", args.tasks,
                               "--seeds", str(args.seeds), "--work", str(work)] + (["--smoke"] if args.smoke else []), env=env)
             for i in range(args.jobs)]
    if any(p.wait() != 0 for p in procs):
        sys.exit("a worker failed; finished cells are kept in --work, run again to resume")
    results = [json.loads(line) for i in range(args.jobs) for line in (work / f"part-{i}.jsonl").read_text().splitlines()]
    results = [{**r, "student": r["family"]} for r in results]  # "family" cells: under the family they resolved to
    from edgecompress.bench.device_runner import cpu_model
    from edgecompress.distill.config import DistillConfig
    from edgecompress.runconfig import DEMO_METHOD

    res = aggregate(results, DistillConfig(method=DEMO_METHOD).method.value)
    res.update({"command": "python benchmarks/compression_table.py " + " ".join(sys.argv[1:]),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu_model()}",
                "cell_s_total": round(sum(r["run_s"] for r in results), 1), "cells": len(results), "compress_target": COMPRESS,
                "schedule": {k: {kk: v[kk] for kk in ("epochs", "steps", "batch")} for k, v in TASKS.items() if k in tasks}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression_table.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "compression_table.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
