"""Distillation method table: students of one architecture, every method, three label fractions.

    .venv/bin/python benchmarks/distill_table.py [--seeds 2] [--datasets digits,shapes] [--out benchmarks/results]

For each built-in dataset (digits; shapes with its style-shifted ``shapes-pool``) the cached demo
teacher (trained with all labels) teaches one student architecture by each method at labeled
fractions 100%, 10% and 2%, over several seeds; test accuracy mean +- std (population std over
seeds) and top-1 agreement with the teacher are reported. ``anc-labelfree`` uses no labels at
all, so it is one row per dataset (labeled_fraction 0): its images are the whole training set
plus the pool, the same at every fraction.

Scaled to fit ~25 CPU-core-minutes (see SCALE below and the JSON's "scaling"): short schedules,
smaller val/test splits, augmentation off -- which makes the teacher's output on an image a
constant, so it is memoized across runs (:class:`MemoTeacher`; the math is unchanged, the
teacher just never runs twice on the same image).

Then one distillation step (anc+align, the full machinery) is timed against a minimal
hand-written loop doing the same forward/backward math on the same batches; the timing part
runs under ``flock /tmp/edgecompress-cpu.lock`` when that lock is available (shared machine).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecompress.artifacts import StudentSpec, atomic_write_text  # noqa: E402
from edgecompress.data import load_task  # noqa: E402
from edgecompress.distill import DistillConfig, demo_teacher, demo_teacher_info, distill, load_teacher  # noqa: E402
from edgecompress.distill.teacher import Teacher, TeacherOutput  # noqa: E402
from edgecompress.students.families import resnet_arch  # noqa: E402

METHODS = ("supervised", "kd", "fitnet", "anc", "anc+unlabeled", "anc+align")
FRACTIONS = (1.0, 0.1, 0.02)
# dataset -> task string (smaller val/test than the defaults), pool, and the training scale
SCALE: dict[str, dict[str, Any]] = {
    "shapes": {"data": "shapes:val=1000,test=2000", "pool": "shapes-pool", "epochs": 4, "steps": 80, "batch": 32},
    "digits": {"data": "digits", "pool": None, "epochs": 4, "steps": 25, "batch": 32},
}
STUDENT_WIDTH = 0.25


class MemoTeacher(Teacher):
    """Wraps a teacher; remembers its output per image (row bytes hash). Valid only without
    augmentation, where the same image always reaches the teacher unchanged."""

    def __init__(self, inner: Teacher) -> None:
        super().__init__(inner.path)
        self.inner, self.format = inner, inner.format
        self.memo: dict[bytes, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        return self.inner.input_shape

    @property
    def module(self) -> torch.nn.Module | None:
        return self.inner.module

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        keys = [hashlib.blake2b(r.numpy().tobytes(), digest_size=16).digest() for r in x.contiguous()]
        missing = [i for i, k in enumerate(keys) if k not in self.memo]
        if missing:
            out = self.inner(x[missing])
            for j, i in enumerate(missing):
                self.memo[keys[i]] = (out.logits[j], None if out.embedding is None else out.embedding[j])
        logits = torch.stack([self.memo[k][0] for k in keys])
        embs = [self.memo[k][1] for k in keys]
        return TeacherOutput(logits, None if embs[0] is None else torch.stack(embs), {})  # type: ignore[arg-type]


def teacher_norm(dataset: str) -> dict[str, Any]:
    """The teacher's own input normalization: every run feeds it exactly what it was trained on
    (a task's statistics would otherwise shift with the labeled fraction and seed)."""
    info = demo_teacher_info(dataset)
    return {"mean": tuple(info["mean"]), "std": tuple(info["std"])}


def student_spec(task: Any) -> StudentSpec:
    shape = tuple(task.input_shape)
    return StudentSpec(family="resnet", arch=resnet_arch(shape, depth=1), input_shape=shape,  # type: ignore[arg-type]
                       num_classes=task.num_classes, width_mult=STUDENT_WIDTH)


def config(method: str, scale: dict[str, Any], seed: int) -> DistillConfig:
    # Label-free runs have one stream: give it both streams' rows so every method sees the same
    # number of images per step.
    ub = 2 * scale["batch"] if method == "anc-labelfree" else None
    return DistillConfig(method=method, epochs=scale["epochs"], steps_per_epoch=scale["steps"],
                         batch_size=scale["batch"], unlabeled_batch_size=ub, seed=seed, lr=3e-3, warmup_epochs=0.5)


def run_cells(dataset: str, seeds: int, work: Path, log: Any, fractions: tuple[float, ...] = FRACTIONS,
              labelfree: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    scale = SCALE[dataset]
    teacher = MemoTeacher(load_teacher(demo_teacher(dataset, progress=False)))
    norm = teacher_norm(dataset)
    rows: list[dict[str, Any]] = []
    cells: list[tuple[float, str]] = [(f, m) for f in fractions for m in METHODS] + ([(0.0, "anc-labelfree")] if labelfree else [])
    teacher_acc: list[float] = []
    for fraction, method in cells:
        accs, agrees, secs, note = [], [], [], None
        for seed in range(seeds):
            task = load_task(scale["data"], unlabeled=scale["pool"], labeled_fraction=fraction or 1.0, seed=seed,
                             augment=False, progress=False, **norm)
            if method in ("anc+unlabeled", "anc+align") and (task.unlabeled is None or len(task.unlabeled) == 0):
                note = "no unlabeled data at this fraction (digits has no pool)"
                break
            t0 = time.perf_counter()
            ck = distill(teacher, student_spec(task), task, config(method, scale, seed),
                         work / dataset / f"{method}-{fraction}-{seed}", progress=False)
            secs.append(time.perf_counter() - t0)
            accs.append(ck.metrics["test_acc"])
            agrees.append(ck.metrics["test_agreement"])
            teacher_acc.append(ck.metrics["teacher_test_acc"])
            print(f"{dataset} f={fraction} {method} seed={seed}: acc {accs[-1]:.4f} agree {agrees[-1]:.4f} "
                  f"({secs[-1]:.1f} s)", file=log, flush=True)
        row: dict[str, Any] = {"dataset": dataset, "labeled_fraction": fraction, "method": method, "seeds": len(accs)}
        if accs:
            row.update(acc_mean=statistics.fmean(accs), acc_std=statistics.pstdev(accs), acc_all=accs,
                       agreement_mean=statistics.fmean(agrees), run_s_mean=statistics.fmean(secs))
        else:
            row.update(acc_mean=None, acc_std=None, note=note)
        rows.append(row)
    info = demo_teacher_info(dataset)
    return rows, {"test_acc": statistics.fmean(teacher_acc), "train_s": info["train_s"], "params": info["params"],
                  "steps": info["steps"]}


# --------------------------------------------------------------------------- step overhead


def step_overhead(dataset: str, repeats: int, steps: int) -> dict[str, Any]:
    """Median time of ``student_step + discriminator_step`` over a hand-written loop doing the
    same math (teacher forward, student forward with the same taps, CE + adversarial + L2
    data + domain-confusion terms, backward, AdamW, then both discriminators)."""
    from edgecompress.distill import setup as S
    from edgecompress.distill import trainer as T
    from edgecompress.distill.distributed import DistInfo
    from edgecompress.distill.preflight import check_inputs
    from edgecompress.students import create_student

    scale = SCALE[dataset]
    task = load_task(scale["data"], unlabeled=scale["pool"], labeled_fraction=0.1, seed=0, augment=False, progress=False,
                     **teacher_norm(dataset))
    teacher = load_teacher(demo_teacher(dataset, progress=False))
    spec = student_spec(task)
    cfg = config("anc+align", scale, 0)
    streams = S.make_streams(task, cfg, DistInfo())
    batches = [streams.batch(0, i) for i in range(steps)]
    probe = check_inputs(teacher, spec, task, cfg)

    def fresh() -> Any:
        torch.manual_seed(0)
        student = create_student(spec)
        return S.build_run(teacher, student, cfg, {"input_shape": spec.input_shape, "teacher": probe}, 1000, DistInfo(), torch.device("cpu"))

    def ours() -> float:
        run = fresh()
        t0 = time.perf_counter()
        for i, (x, y, nl) in enumerate(batches):
            t, _ = T.student_step(run, x, y, nl, f"step {i}")
            T.discriminator_step(run, t, f"step {i}")
        return (time.perf_counter() - t0) / len(batches)

    def by_hand() -> float:
        run = fresh()
        student, parts, opt, dopt, sched = run.student, run.parts, run.opt, run.disc_opt, run.sched
        low: dict[str, torch.Tensor] = {}
        run.low_module.register_forward_hook(lambda m, i, o: low.__setitem__("x", o))  # type: ignore[union-attr]
        emb: dict[str, torch.Tensor] = {}
        student.classifier.register_forward_hook(lambda m, i, o: emb.__setitem__("x", i[0]))
        t0 = time.perf_counter()
        for x, y, nl in batches:
            student.train()
            with torch.no_grad():
                tout = teacher(x)
            s_logits = student(x)
            s_emb = parts.anc_adapter(emb["x"])
            d_fake = parts.anc_disc(s_emb)
            dom = parts.domain_disc(low["x"])
            loss = (F.cross_entropy(s_logits[:nl], y)
                    + F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
                    + F.mse_loss(s_logits, tout.logits)
                    + 0.3 * F.binary_cross_entropy_with_logits(dom, torch.full_like(dom, 0.5)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            fake = s_emb.detach()
            real_l, fake_l = parts.anc_disc(tout.embedding), parts.anc_disc(fake)
            adv_l = parts.anc_disc(F.dropout(fake, 0.5))
            dl = parts.domain_disc(low["x"].detach())
            dt = torch.ones_like(dl)
            dt[:nl] = 0
            dloss = (F.binary_cross_entropy_with_logits(real_l, torch.ones_like(real_l))
                     + F.binary_cross_entropy_with_logits(fake_l, torch.zeros_like(fake_l))
                     + F.binary_cross_entropy_with_logits(adv_l, torch.ones_like(adv_l))
                     + F.binary_cross_entropy_with_logits(dl, dt))
            dopt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
            dloss.backward()
            dopt.step()  # type: ignore[union-attr]
        return (time.perf_counter() - t0) / len(batches)

    ours(), by_hand()  # warm-up (allocator, lazy init)
    a, b = [], []
    for _ in range(repeats):  # interleaved so drift in machine load hits both alike
        a.append(ours())
        b.append(by_hand())
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return {"step_ms_edgecompress": [round(v * 1000, 3) for v in a], "step_ms_by_hand": [round(v * 1000, 3) for v in b],
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "method": "anc+align", "dataset": dataset, "steps_per_repeat": steps, "repeats": repeats}


def _command() -> str:
    return "python benchmarks/distill_table.py " + " ".join(sys.argv[1:])


def _locked(path: str = "/tmp/edgecompress-cpu.lock") -> Any:
    fh = open(path, "a+")  # noqa: SIM115 -- held for the duration of the timing
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


# --------------------------------------------------------------------------- report


def targets(rows: list[dict[str, Any]], teacher: dict[str, Any], ds: str) -> dict[str, Any]:
    def acc(ds: str, f: float, m: str) -> float | None:
        return next((r["acc_mean"] for r in rows if r["dataset"] == ds and r["labeled_fraction"] == f and r["method"] == m), None)

    out: dict[str, Any] = {}
    at10 = {r["method"]: r["acc_mean"] for r in rows if r["dataset"] == ds and r["labeled_fraction"] == 0.1 and r["acc_mean"] is not None}
    best_method = max((m for m in at10 if m != "supervised"), key=lambda m: at10[m])
    best, t_acc = at10[best_method], teacher[ds]["test_acc"]
    sup10, kd10 = at10.get("supervised"), at10.get("kd")
    lf, sup100 = acc(ds, 0.0, "anc-labelfree"), acc(ds, 1.0, "supervised")
    out.update({
        "dataset": ds,
        "best_method_at_10pct": best_method,
        "best_acc_at_10pct": best,
        "best_ge_teacher_minus_1pt": {"value_pt": round(100 * (best - t_acc), 2), "met": best >= t_acc - 0.01},
        "best_ge_supervised_plus_5pt": {"value_pt": round(100 * (best - sup10), 2), "met": best >= sup10 + 0.05} if sup10 is not None else None,
        "best_gt_kd": {"value_pt": round(100 * (best - kd10), 2), "met": best > kd10} if kd10 is not None else None,
        "labelfree_ge_supervised_all_labels": {"value_pt": round(100 * (lf - sup100), 2), "met": lf >= sup100}
        if lf is not None and sup100 is not None else None,
    })
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Distillation methods (edgecompress)", "",
             f"Command: `{result['command']}`  ",
             *[f"after: `{c}`  " for c in result.get("part_commands (run in parallel, in this order, before the merge)", [])],
             f"Machine: {result['machine']}", "",
             "Teacher (demo ResNet, all labels): " + ", ".join(
                 f"{d} {100 * t['test_acc']:.1f}% ({t['params']} params, trained {t['train_s']:.0f} s)" for d, t in result["teacher"].items()),
             "", f"Student: `resnet` depth 1, width {STUDENT_WIDTH} (same architecture for every row).", "",
             "| dataset | labels | method | test acc (mean ± std) | seeds | agreement w/ teacher |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        frac = "none" if r["labeled_fraction"] == 0 else f"{100 * r['labeled_fraction']:g}%"
        if r["acc_mean"] is None:
            lines.append(f"| {r['dataset']} | {frac} | {r['method']} | n/a ({r['note']}) | 0 | |")
        else:
            lines.append(f"| {r['dataset']} | {frac} | {r['method']} | {100 * r['acc_mean']:.1f} ± {100 * r['acc_std']:.1f} | "
                         f"{r['seeds']} | {100 * r['agreement_mean']:.1f}% |")
    so = result["step_overhead"]
    for t in result["targets"].values():
        lines += ["", f"## Targets ({t['dataset']}, 10% labels + the unlabeled data)", ""]
        for key in ("best_ge_teacher_minus_1pt", "best_ge_supervised_plus_5pt", "best_gt_kd", "labelfree_ge_supervised_all_labels"):
            v = t.get(key)
            if v:
                lines.append(f"- {key}: {'MET' if v['met'] else 'MISSED'} ({v['value_pt']:+.2f} pt)")
        lines.append(f"- best method at 10%: {t['best_method_at_10pct']} ({100 * t['best_acc_at_10pct']:.1f}%)")
    lines += ["", "## Step overhead", "",
              f"- edgecompress step / hand-written loop ({so['method']}, {so['dataset']}, median of {so['repeats']} interleaved "
              f"repeats of {so['steps_per_repeat']} steps): {result['step_overhead_ratio']:.3f} (min {so['ratio_min']:.3f}, "
              f"max {so['ratio_max']:.3f}); target <= 1.10: {'MET' if result['step_overhead_ratio'] <= 1.10 else 'MISSED'}"]
    lines += ["", "## Scaling", "", *[f"- {k}: {v}" for k, v in result["scaling"].items()], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--datasets", default="shapes,digits")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--work", default="/tmp/edgecompress-distill-table")
    ap.add_argument("--timing-repeats", type=int, default=7)
    ap.add_argument("--smoke", action="store_true", help="1 epoch x 2 steps, to check the script runs (numbers meaningless)")
    ap.add_argument("--fractions", default=",".join(map(str, FRACTIONS)), help="labeled fractions to run")
    ap.add_argument("--no-labelfree", action="store_true", help="skip the anc-labelfree row")
    ap.add_argument("--only-labelfree", action="store_true", help="run only the anc-labelfree row")
    ap.add_argument("--part", default=None, help="only run the cells and save them as part NAME (no timing)")
    ap.add_argument("--merge", action="store_true", help="merge the saved parts, time the step, write the results")
    args = ap.parse_args()
    if args.smoke:
        for s in SCALE.values():
            s.update(epochs=1, steps=2)
    torch.set_num_threads(1)
    work, out = Path(args.work), Path(args.out)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    teacher: dict[str, Any] = {}
    if args.merge:  # the table was run as parallel parts (one process each); collect them
        parts = sorted(work.glob("part-*.json"), key=lambda p: p.stat().st_mtime)
        cells: dict[tuple[str, float, str], dict[str, Any]] = {}
        for part in parts:  # a later part re-running a cell replaces it
            data = json.loads(part.read_text())
            cells.update({(r["dataset"], r["labeled_fraction"], r["method"]): r for r in data["rows"]})
            teacher.update(data["teacher"])
        rows = list(cells.values())
        order = {(d, f, m): i for i, (d, f, m) in enumerate(
            (d, f, m) for d in SCALE for f in (*FRACTIONS, 0.0) for m in (*METHODS, "anc-labelfree"))}
        rows.sort(key=lambda r: order[(r["dataset"], r["labeled_fraction"], r["method"])])
        cpu_s = sum(json.loads(p.read_text())["cpu_s"] for p in parts)
        parts_wall_s = max(json.loads(p.read_text())["wall_s"] for p in parts)
        part_commands = [json.loads(p.read_text()).get("command") for p in parts]
    else:
        fractions = () if args.only_labelfree else tuple(float(f) for f in args.fractions.split(","))
        for ds in args.datasets.split(","):
            r, t = run_cells(ds, args.seeds, work, sys.stderr, fractions, not args.no_labelfree)
            rows += r
            teacher[ds] = t
        cpu_s = time.process_time()
        if args.part:
            atomic_write_text(work / f"part-{args.part}.json",
                              json.dumps({"rows": rows, "teacher": teacher, "cpu_s": cpu_s, "command": _command(),
                                          "wall_s": time.perf_counter() - t0}, indent=1))
            return
    table_s = parts_wall_s if args.merge else time.perf_counter() - t0
    lock = _locked()
    try:
        so = step_overhead("shapes" if "shapes" in teacher else next(iter(teacher)), args.timing_repeats, 3 if args.smoke else 20)
    finally:
        lock.close()
    result = {
        "command": _command(),
        "part_commands (run in parallel, in this order, before the merge)": part_commands if args.merge else [],
        "machine": f"shared 2-core VM (other jobs running), {platform.processor() or platform.machine()}, torch "
                   f"{torch.__version__}, 1 thread",
        "teacher": teacher,
        "rows": rows,
        "step_overhead_ratio": so["ratio_median"],
        "step_overhead": so,
        "targets": {ds: targets(rows, teacher, ds) for ds in teacher},
        "scaling": {
            "schedule": {d: f"{s['epochs']} epochs x {s['steps']} steps, batch {s['batch']} labeled + {s['batch']} unlabeled"
                         for d, s in SCALE.items()},
            "data": {d: s["data"] + (f" + {s['pool']}" if s["pool"] else "") for d, s in SCALE.items()},
            "augmentation": "off (teacher outputs memoized per image)",
            "seeds": args.seeds,
            "table_wall_s (parts run in parallel: the longest)": round(table_s, 1),
            "table_cpu_s": round(cpu_s, 1),
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "distill_table.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "distill_table.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
