"""Wall time of the README's main job, `edgecompress build --device pixel7`, on the demo.

Runs it twice in a fresh run folder with an empty cache (first run: data generation and
demo-teacher training included; second run: every stage resumed) and records the times and
the student's figures. Writes benchmarks/results/default_build.{json,md}.

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


def _run(run_dir: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edgecompress", "build", "--device", "pixel7", "--out", str(run_dir)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGECOMPRESS_CACHE=str(Path(tmp) / "cache"))
        run_dir = Path(tmp) / "run"
        cold = _run(run_dir, env)
        warm = _run(run_dir, env)
        s = json.loads((run_dir / "summary.json").read_text())
    final, v = s["training"]["final"], s["verdict"]
    int8 = next(a for a in s["artifacts"] if a["precision"] == "full-int8")
    result = {
        "command": "edgecompress build --device pixel7",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared VM)",
        "cold_wall_s": round(cold, 1),
        "resumed_wall_s": round(warm, 1),
        "resumed_stages": s["resumed_stages"],
        "student": s["selection"]["chosen"]["extra"].get("label", s["selection"]["chosen"]["arch"]),
        "student_test_acc": final.get("test_acc"),
        "teacher_test_acc": final.get("teacher_test_acc"),
        "int8_top1_agreement": int8["parity"]["top1_agreement"],
        "predicted_pixel7_latency_ms": v["latency_ms"],
        "target_cold_wall_s": 300,
        "met": cold <= 300,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "default_build.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Default build (`edgecompress build --device pixel7`, built-in demo)",
        "",
        f"Command: `python benchmarks/default_build.py` on {result['machine']}.",
        "",
        "| first run, empty cache | second run (resumed) | student | test acc | teacher | int8 agreement | target ≤ 300 s |",
        "|---|---|---|---|---|---|---|",
        f"| {result['cold_wall_s']} s | {result['resumed_wall_s']} s | pruned-teacher {result['student']} | "
        f"{100 * result['student_test_acc']:.1f}% | {100 * result['teacher_test_acc']:.1f}% | "
        f"{100 * result['int8_top1_agreement']:.1f}% | {'met' if result['met'] else 'MISSED'} |",
        "",
    ]
    (OUT / "default_build.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
