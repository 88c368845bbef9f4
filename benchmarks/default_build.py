"""Wall time of the README's main job, `edgecompress build --device pixel7`, on the demo.

Runs it twice in a fresh run folder with an empty cache (first run: data generation, the shipped
demo teacher turned into its cached program, selection, distillation, export and bench; second
run: every stage resumed) and records the times, the compression and the student's accuracy next
to the teacher's. Writes benchmarks/results/default_build.{json,md}.

    python benchmarks/default_build.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from edgecompress.bench.device_runner import cpu_model  # noqa: E402  (stdlib only)
from edgecompress.export.cpu_int8 import cpu_flags  # noqa: E402  (stdlib only)


def _run(run_dir: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edgecompress", "build", "--device", "pixel7", "--out", str(run_dir)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def int8_flags() -> list[str]:
    """The x86 int8 extensions the kernels can use (VNNI, AMX), or [] where /proc/cpuinfo has none."""
    return sorted(f for f in cpu_flags() if "vnni" in f or f.startswith("amx") or f == "avx2")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGECOMPRESS_CACHE=str(Path(tmp) / "cache"))
        run_dir = Path(tmp) / "run"
        cold = _run(run_dir, env)
        warm = _run(run_dir, env)
        s = json.loads((run_dir / "summary.json").read_text())
    final, v = s["training"]["final"], s["verdict"]
    int8 = next(a for a in s["artifacts"] if a["precision"] == "full-int8")
    c = s["compression"]
    acc_gap = 100 * (final["test_acc"] - final["teacher_test_acc"])
    result = {
        "command": "edgecompress build --device pixel7",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared VM)",
        "cold_wall_s": round(cold, 1),
        "resumed_wall_s": round(warm, 1),
        "resumed_stages": s["resumed_stages"],
        "student": s["selection"]["chosen"].get("label") or s["selection"]["chosen"]["arch"],
        "student_test_acc": final.get("test_acc"),
        "teacher_test_acc": final.get("teacher_test_acc"),
        "int8_top1_agreement": int8["parity"]["top1_agreement"],
        "predicted_pixel7_latency_ms": v["latency_ms"],
        "compression": {k: c[k] for k in ("macs_x", "params_x", "size_x", "latency_x", "target_x")},
        "teacher_macs": c["teacher"]["macs"], "student_macs": c["student"]["macs"],
        "acc_vs_teacher_pt": round(acc_gap, 2),
        "stages_s": s["stages"],
        "cpu": cpu_model(),
        "cpu_int8_flags": int8_flags(),
        "targets": {"cold_wall_s_le_300": cold <= 300, "macs_x_ge_8": c["macs_x"] >= 8, "acc_within_1pt": acc_gap >= -1.0},
        "met": cold <= 300 and c["macs_x"] >= 8 and acc_gap >= -1.0,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "default_build.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Default build (`edgecompress build --device pixel7`, built-in demo)",
        "",
        f"Command: `python benchmarks/default_build.py` on {result['machine']}, {result['cpu']} "
        f"({', '.join(result['cpu_int8_flags']) or 'no int8 flags read'}).",
        "",
        "| first run, empty cache | second run (resumed) | student | x MACs | x params | test acc | teacher | "
        "vs teacher | int8 agreement |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {result['cold_wall_s']} s | {result['resumed_wall_s']} s | {s['selection']['chosen']['family']} {result['student']} | "
        f"{c['macs_x']:.1f} | {c['params_x']:.1f} | "
        f"{100 * result['student_test_acc']:.1f}% | {100 * result['teacher_test_acc']:.1f}% | {acc_gap:+.2f} pt | "
        f"{100 * result['int8_top1_agreement']:.1f}% |",
        "",
        "Targets: first run <= 300 s " + ("met" if result["targets"]["cold_wall_s_le_300"] else "MISSED")
        + "; >= 8x fewer MACs " + ("met" if result["targets"]["macs_x_ge_8"] else "MISSED")
        + "; within 1 pt of the teacher " + ("met" if result["targets"]["acc_within_1pt"] else "MISSED") + ".",
        "",
        "Stage times (s): " + ", ".join(f"{k} {v}" for k, v in s["stages"].items()),
        "",
    ]
    (OUT / "default_build.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
