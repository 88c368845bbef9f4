"""Is the kernel-level calibration better than the strongest simple baseline on the same data?

Reads the committed run of ``benchmarks/latency_predictor.py`` (the host calibration file it
saved: every probe measurement, and the held-out students' measured latencies in its JSON) and
refits it on exactly those probe measurements:

- **calibrate's choice**: the prior and the channel padding that predict the left-out probes
  best;
- **kernel prior** (ONNX Runtime keys): the whole-model fit pulled towards the fit of the
  kernels timed apart by ONNX Runtime's node profiler (tied to the whole probes inside each
  leave-one-out fold);
- **whole models only** (ONNX Runtime keys; the calibration before kernels, the strongest
  simple baseline): the same fit pulled towards the profile's priors, no kernel samples;
- **general padding rules only** (every key; without the rules a runtime declares, such as
  ONNX Runtime int8's "sym": which convs MLAS runs on its generic path);
- **"io" padding only** (every key; the cost model before the padding rules): convs padded on
  inputs and outputs or not at all, never on outputs only.

All are scored on the same held-out students (regenerated from the benchmark's held-out seed
and checked against the JSON's labels). No new measurement is taken: this compares fits of one
fresh run's data, so the columns differ only by the prior or the padding choices.

    python benchmarks/predictor_baseline.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.predictor_scoring import latency_scores  # noqa: E402
from edgecompress.artifacts import atomic_write_text  # noqa: E402
from edgecompress.cost.calibrate import random_students  # noqa: E402
from edgecompress.cost.calibration import Calibration, LatencyPredictor, Measurement  # noqa: E402
from edgecompress.cost.estimate import PADDING_CHOICES  # noqa: E402
from edgecompress.profiles import load_profile  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NO_RUNTIME_RULES = "general padding rules only"
IO_ONLY = '"io" padding only'


def main() -> None:
    run = json.loads((RESULTS / "latency_predictor.json").read_text())
    profile = load_profile("host")
    cal_path = ROOT / run["calibration_file"]
    io_only = [(b, r) for b, r in PADDING_CHOICES if r != "out"]
    preds = {}
    for name, prior, paddings in (("calibrate's choice", None, None), ("kernel prior", "kernels", None),
                                  ("whole models only", "profile priors", None),
                                  (NO_RUNTIME_RULES, None, PADDING_CHOICES), (IO_ONLY, None, io_only)):
        cal = Calibration.load(cal_path, profile.name)
        cal.refit(profile, prior=prior, paddings=paddings)
        preds[name] = LatencyPredictor(profile, cal)
    seed = int(run.get("held_out_seed", 1))
    held = random_students(run["held_out"], tuple(run["input_shape"]), seed=seed)
    rows = {}
    for key, res in run["runtimes"].items():
        runtime, precision = key.split(":")
        # LiteRT's interpreter reports no per-op times: it has only the whole-model fit.
        names = list(preds) if runtime == "onnxruntime-cpu" else ["calibrate's choice", NO_RUNTIME_RULES, IO_ONLY]
        models = res["models"]
        labels = [(s.family, s.label) for s in held]
        if [(r["family"], r["label"]) for r in models] != labels:
            raise SystemExit(f"{key}: the JSON's held-out students are not the benchmark's seed-{seed} draw; re-run it")
        # The held-out measurements as the benchmark scored them (its JSON keeps median and p90/p50).
        ms = [Measurement(runtime, precision, spec, r["measured_ms"], r["measured_ms"] * r["p90_over_p50"], 0.0, run["runs"])
              for spec, r in zip(held, models, strict=True)]
        rows[key] = {name: latency_scores(preds[name], ms)[0] for name in names}
    result = {"source": "benchmarks/results/latency_predictor.json + " + run["calibration_file"],
              "source_command": run["command"], "cpu": run["cpu"], "cpu_int8_flags": run["cpu_int8_flags"],
              "probe_models": run["probe_models"], "held_out": run["held_out"], "runtimes": rows,
              "command": "python " + os.path.relpath(__file__, ROOT)}
    lines = ["# Predictor fits compared on the same measurements (kernel prior, whole models, padding rules)", "",
             f"Probes and held-out latencies of `{run['command']}` ({run['cpu']}); refitted with different priors "
             "and padding choices, nothing re-measured.", "",
             "| runtime | fit | within ±10% | within ±5% | MAPE % | worst % | Spearman | coverage |",
             "|---|---|---|---|---|---|---|---|"]
    for key, fits in rows.items():
        for name, s in fits.items():
            cov = s["interval_coverage"]
            lines.append(f"| {key} | {name} | {s['within_10pct']:.0%} | {s['within_5pct']:.0%} | {s['mape']} | "
                         f"{s['worst_abs_pct']} | {s['spearman']} | {'-' if cov is None else f'{cov:.0%}'} |")

    def picked(key: str, name: str) -> dict[str, object]:
        f = preds[name].calibration.fits[key]
        return {"prior": f["prior"], "channel_block": f["channel_block"], "padding": f["padding"]}

    chosen = {key: {name: picked(key, name) for name in ("calibrate's choice", NO_RUNTIME_RULES, IO_ONLY)} for key in rows}
    result["calibrate_chose"] = chosen
    lines += ["", "Chosen by leave-one-out over the probes (prior; channel block, padding rule):", ""]
    for key, c in chosen.items():
        lines.append(f"- {key}: " + "; ".join(f"{name}: {v['prior']}, {v['channel_block']} {v['padding']}"
                                              for name, v in c.items()))
    lines += ["", f"Command: `{result['command']}`", ""]
    atomic_write_text(RESULTS / "predictor_baseline.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(RESULTS / "predictor_baseline.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
