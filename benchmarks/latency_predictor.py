"""How well does the calibrated latency predictor predict unseen students, and does selection hit budgets?

On ``host``: export <= 30 probe models and >= 50 random held-out students (ONNX fp32 for ONNX
Runtime, full-int8 TFLite for the LiteRT interpreter with XNNPACK), measure all of them with the
benchmark harness (fresh process per run, pinned to one core, 1 thread, median of the counted
runs, fastest of ``--repeats`` interleaved rounds), fit the predictor on the probes only, and
score it on the held-out students: share within ±10%, RMSPE, worst error. Then, for three
latency budgets, let ``select_student`` choose a student, export and measure it, and report
measured / budget (target [0.85, 1.0]).

Exports are cached under ``--work`` (keyed by the spec), so re-running re-measures without
re-converting. Only the timing phases hold ``/tmp/edgecompress-cpu.lock`` (flock), so timings
never overlap with another timing job on this shared machine; conversions run outside it.

    python benchmarks/latency_predictor.py                       # full run, writes results/
    python benchmarks/latency_predictor.py --probes 6 --held-out 6 --no-tflite --out /tmp/x   # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from edgecompress.artifacts import StudentSpec, atomic_write_text
from edgecompress.cost.calibrate import export_spec, measure_all, probe_specs, random_students
from edgecompress.cost.calibration import Calibration, LatencyPredictor, Measurement, runtime_key
from edgecompress.cost.estimate import spec_cost
from edgecompress.cost.predictor import Accuracy
from edgecompress.errors import EdgeCompressError
from edgecompress.profiles import load_profile
from edgecompress.select import finalize, run_selection

LOCK = "/tmp/edgecompress-cpu.lock"
ORT = ("onnxruntime-cpu", "fp32")
TFL = ("tflite-xnnpack", "int8")


@contextlib.contextmanager
def cpu_lock() -> Iterator[None]:
    """The same lock `flock /tmp/edgecompress-cpu.lock CMD` takes (flock(2) on the file)."""
    with open(LOCK, "a") as fh:
        t = time.time()
        fcntl.flock(fh, fcntl.LOCK_EX)
        print(f"[lock] acquired after {time.time() - t:.0f} s", file=sys.stderr)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def spec_key(spec: StudentSpec) -> str:
    return hashlib.sha256(json.dumps([spec.family, spec.arch, spec.width_mult, spec.input_shape, spec.num_classes]).encode()).hexdigest()[:12]


def exported(specs: list[StudentSpec], keys: list[tuple[str, str]], work: Path, deadline: float = float("inf"),
             failures: list[dict[str, str]] | None = None) -> list[tuple[StudentSpec, str, str, Path]]:
    """Export each spec once (cached by spec key); return (spec, runtime, precision, file) items.

    A spec whose conversion fails is recorded in ``failures`` and skipped; after ``deadline``
    (epoch seconds) no new conversion starts (onnx2tf takes ~15-80 s per model here).
    """
    items = []
    for i, spec in enumerate(specs):
        d = work / spec_key(spec)
        index = d / "files.json"
        files: dict[str, str] = json.loads(index.read_text()) if index.exists() else {}
        missing = [k for k in keys if runtime_key(*k) not in files and f"failed:{runtime_key(*k)}" not in files]
        if missing and time.time() < deadline:
            t = time.time()
            try:
                got = export_spec(spec, missing, d / f"export-{len(files)}", seed=int(spec_key(spec)[:6], 16) % 1000)
                files.update({runtime_key(*k): str(p) for k, p in got.items()})
            except EdgeCompressError as exc:
                files.update({f"failed:{runtime_key(*k)}": str(exc)[:300] for k in missing})
            atomic_write_text(index, json.dumps(files))
            print(f"[export] {i + 1}/{len(specs)} {spec.family} {spec.extra.get('label')} {time.time() - t:.0f} s", file=sys.stderr)
        for k in keys:
            if runtime_key(*k) in files:
                items.append((spec, k[0], k[1], Path(files[runtime_key(*k)])))
            elif f"failed:{runtime_key(*k)}" in files and failures is not None:
                failures.append({"runtime": runtime_key(*k), "family": spec.family, "label": str(spec.extra.get("label")),
                                 "error": files[f"failed:{runtime_key(*k)}"]})
    return items


def interleave(a: list[StudentSpec], b: list[StudentSpec]) -> list[StudentSpec]:
    """a0 b0 b1 a1 b2 b3 ...: when the conversion deadline cuts the list, both sets are represented."""
    out, ia, ib = [], 0, 0
    while ia < len(a) or ib < len(b):
        if ia < len(a):
            out.append(a[ia])
            ia += 1
        out += b[ib : ib + 2]
        ib += 2
    return out


def measured_cached(items: list[tuple[StudentSpec, str, str, Path]], profile: object, args: argparse.Namespace) -> list[Measurement]:
    """Measure (under the CPU lock), or reuse the measurements of an earlier run with --reuse."""
    cache = args.work / "measurements.json"
    old: dict[str, dict[str, object]] = json.loads(cache.read_text()) if (args.reuse and cache.exists()) else {}
    todo = [it for it in items if str(it[3]) not in old]
    if todo:
        with cpu_lock():
            new = measure_all(todo, profile, runs=args.runs, warmup=args.warmup, repeats=args.repeats)  # type: ignore[arg-type]
        allm = json.loads(cache.read_text()) if cache.exists() else {}
        for it, m in zip(todo, new, strict=True):
            allm[str(it[3])] = m.to_dict()
            old[str(it[3])] = m.to_dict()
        atomic_write_text(cache, json.dumps(allm))
    return [Measurement.from_dict(old[str(it[3])], "cache") for it in items]


def score(pred: LatencyPredictor, ms: list[Measurement]) -> tuple[Accuracy, list[dict[str, object]]]:
    rows = []
    for m in ms:
        p = pred.predict(spec_cost(m.spec).features, m.runtime, m.precision)
        rows.append({"family": m.spec.family, "label": m.spec.extra.get("label"), "macs": spec_cost(m.spec).macs,
                     "measured_ms": round(m.latency_ms, 4), "p90_ms": round(m.p90_ms, 4), "predicted_ms": round(p, 4),
                     "error_pct": round((p - m.latency_ms) / m.latency_ms * 100, 2)})
    return Accuracy.of([r["predicted_ms"] for r in rows], [m.latency_ms for m in ms]), rows  # type: ignore[misc]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=30)
    ap.add_argument("--held-out", type=int, default=50)
    ap.add_argument("--input", default="3x32x32")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-tflite", action="store_true", help="ONNX Runtime only (quick smoke run)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecompress-latency-predictor"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="where to save the host calibration (default: the host profile's calibration file)")
    ap.add_argument("--export-only", action="store_true", help="convert everything, measure nothing")
    ap.add_argument("--reuse", action="store_true", help="reuse cached measurements from --work")
    ap.add_argument("--convert-deadline", type=float, default=float("inf"),
                    help="epoch seconds after which no new TFLite conversion starts (models left out are reported)")
    args = ap.parse_args()
    if args.probes > 30:
        ap.error("--probes must be <= 30 (the issue's sample budget)")
    shape = tuple(int(v) for v in args.input.split("x"))
    profile = load_profile("host")
    keys = [ORT] if args.no_tflite else [ORT, TFL]
    t0 = time.time()
    probes = probe_specs(args.probes, shape)  # type: ignore[arg-type]
    held = random_students(args.held_out, shape, seed=1)  # type: ignore[arg-type]
    failures: list[dict[str, str]] = []
    exported(interleave(probes, held), [ORT], args.work)
    if TFL in keys:
        exported(interleave(probes, held), [TFL], args.work, deadline=args.convert_deadline)
    items_p = exported(probes, keys, args.work, deadline=0, failures=failures)
    items_h = exported(held, keys, args.work, deadline=0, failures=failures)
    if args.export_only:
        return
    measured = measured_cached(items_p + items_h, profile, args)
    mp, mh = measured[: len(items_p)], measured[len(items_p):]

    cal = Calibration(profile.name, profile.hardware.soc, list(mp))
    loo = cal.refit(profile)
    cal_path = args.calibration or profile.calibration_path
    cal.save(cal_path)
    pred = LatencyPredictor(profile, cal)
    prior = LatencyPredictor(profile, Calibration(profile.name))
    runtimes: dict[str, object] = {}
    for rt, prec in keys:
        k = runtime_key(rt, prec)
        sub = [m for m in mh if (m.runtime, m.precision) == (rt, prec)]
        acc, rows = score(pred, sub)
        acc_prior, _ = score(prior, sub)
        spread = [m.p90_ms / m.latency_ms for m in sub]
        runtimes[k] = {**dataclasses.asdict(acc), "probes_loo": dataclasses.asdict(loo[k]),
                       "priors_only": dataclasses.asdict(acc_prior),
                       "median_p90_over_p50": round(statistics.median(spread), 3), "models": rows,
                       "coefficients": cal.fits[k]["coef"], "lambda": cal.fits[k]["lambda"]}

    # Budget fit: three budgets at the 25th / 50th / 80th percentile of held-out ORT latencies.
    ort_ms = sorted(m.latency_ms for m in mh if (m.runtime, m.precision) == ORT)
    budgets = [float(f"{ort_ms[int(q * (len(ort_ms) - 1))]:.2g}") for q in (0.25, 0.5, 0.8)]
    chosen = []
    for b in budgets:
        sel = run_selection(profile, shape, 10, latency_ms=b, memory_mb=1e6, size_mb=1e6, predictor=pred)
        chosen.append((b, finalize(sel, profile)))
    items_b = exported([s for _, s in chosen], [ORT], args.work)
    mb = measured_cached(items_b, profile, args)
    budget_fit = [{"budget_ms": b, "measured_ms": round(m.latency_ms, 4), "ratio": round(m.latency_ms / b, 3),
                   "predicted_ms": s.cost.predicted_latency_ms if s.cost else None, "family": s.family,
                   "label": s.extra.get("label"), "macs": s.cost.macs if s.cost else None}
                  for (b, s), m in zip(chosen, mb, strict=True)]

    result = {
        "device": "host", "machine": f"{profile.hardware.soc}, shared 2-core VM ({platform.machine()}), 1 thread, pinned",
        "note": "shared 2-core VM: other jobs ran beside the timings (only timing jobs were serialized by the lock)",
        "probe_models": len(probes), "held_out": len(held), "input_shape": list(shape),
        "measured_per_runtime": {runtime_key(*k): {"probes": sum(1 for m in mp if (m.runtime, m.precision) == k),
                                                   "held_out": sum(1 for m in mh if (m.runtime, m.precision) == k)}
                                 for k in keys},
        "conversion_failures": failures,
        "runs": args.runs, "warmup": args.warmup, "repeats": args.repeats,
        "runtimes": runtimes, "budget_fit": budget_fit,
        "targets": {"within_10pct": 0.95, "budget_ratio": [0.85, 1.0]},
        "met": {**{k: v["within_10pct"] >= 0.95 for k, v in runtimes.items()},  # type: ignore[index]
                "budget_fit": all(0.85 <= r["ratio"] <= 1.0 for r in budget_fit)},
        "calibration_file": str(cal_path), "wall_s": round(time.time() - t0, 1),
        "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "latency_predictor.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out / "latency_predictor.md", to_markdown(result))
    print(to_markdown(result))


def to_markdown(r: dict) -> str:  # type: ignore[type-arg]
    lines = [f"# Latency predictor on {r['device']}", "", f"{r['machine']}. {r['note']}.", "",
             f"Fit on {r['probe_models']} probe models, scored on {r['held_out']} held-out random students "
             f"(input {'x'.join(map(str, r['input_shape']))}, median of {r['runs']} runs, fastest of {r['repeats']} rounds). "
             "Measured per runtime: " + "; ".join(f"{k}: {v['probes']} probes, {v['held_out']} held-out"
                                                  for k, v in r["measured_per_runtime"].items())
             + f"; conversion failures: {len(r['conversion_failures'])}.", "",
             "| runtime | within ±10% | RMSPE % | worst % | probes LOO within ±10% | priors only within ±10% | median p90/p50 |",
             "|---|---|---|---|---|---|---|"]
    for k, v in r["runtimes"].items():
        lines.append(f"| {k} | {v['within_10pct']:.0%} | {v['rmspe']:.1f} | {v['worst_abs_pct']:.1f} | "
                     f"{v['probes_loo']['within_10pct']:.0%} | {v['priors_only']['within_10pct']:.0%} | {v['median_p90_over_p50']} |")
    lines += ["", "Budget fit (ONNX Runtime fp32, selection with the fitted predictor):", "",
              "| budget ms | chosen | predicted ms | measured ms | measured / budget |", "|---|---|---|---|---|"]
    for b in r["budget_fit"]:
        lines.append(f"| {b['budget_ms']} | {b['family']} {b['label']} | {b['predicted_ms']} | {b['measured_ms']} | {b['ratio']} |")
    met = ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in r["met"].items())
    lines += ["", f"Targets (>= 95% within ±10% per runtime; ratio in [0.85, 1.0]): {met}.", "",
              f"Command: `{r['command']}` ({r['wall_s']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # re-render the markdown from the committed JSON
        res = json.loads((Path(__file__).parent / "results" / "latency_predictor.json").read_text())
        atomic_write_text(Path(__file__).parent / "results" / "latency_predictor.md", to_markdown(res))
    else:
        main()
