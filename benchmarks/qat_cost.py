"""QAT cost against a real distillation: `edgecompress build --device pixel7 --qat` on the demo.

Issue 17's target: the quantization-aware fine-tune costs at most 20% of the distillation time.
The pieces of int8_accuracy.py compare QAT with a few epochs of supervised training; this one
measures it where it is used, in the README's main job on the built-in demo:

1. ``edgecompress build --device pixel7 --qat`` into a fresh run folder with an empty cache: data
   generation, the demo teacher, selection, distillation, then int8 straight from the QAT
   fine-tune (no PTQ attempt first);
2. unless ``--no-ptq``: ``edgecompress build --device pixel7`` (no ``--qat``) into the same run
   folder, so selection and distillation resume and only export + bench run again: PTQ-first
   (with the automatic accuracy-aware steps) on the *same* student.

It reads the run's ``summary.json`` (stage seconds, deployment) and the export manifest
(``export/export_summary.json``: every target with its quantization attempts, each with its
``seconds`` and ``settings``). QAT seconds = the ``qat`` attempt's ``settings['qat_s']`` (the
fine-tune itself) and its ``seconds`` (fine-tune + conversion + parity).

    .venv/bin/python benchmarks/qat_cost.py            # ~8-12 min on the shared 2-core VM

Writes ``benchmarks/results/qat_cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from default_build import int8_flags  # noqa: E402

from edgecompress.artifacts import atomic_write_text  # noqa: E402
from edgecompress.bench.device_runner import cpu_model  # noqa: E402

TARGET_RATIO = 0.20
BUILD = ["edgecompress", "build", "--device", "pixel7"]


def _build(run_dir: Path, env: dict[str, str], extra: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(BUILD + extra)} --out {run_dir}\n")
        fh.flush()
        subprocess.run([sys.executable, "-m", *BUILD, *extra, "--out", str(run_dir)], check=True, env=env,
                       stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.perf_counter() - t0


def _int8_target(manifest: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in manifest["targets"] if t.get("precision") in ("full-int8", "int8"))


def _record(run_dir: Path, wall_s: float, mode: str) -> dict[str, Any]:
    """The figures of one build, read from its summary and export manifest."""
    s = json.loads((run_dir / "summary.json").read_text())
    manifest = json.loads((run_dir / "export" / "export_summary.json").read_text())
    t = _int8_target(manifest)
    attempts = t.get("attempts") or []
    art = t.get("artifact") or {}
    qs = art.get("quant_settings") or {}
    qat = next((a for a in attempts if a.get("step") == "qat"), None)
    qat_settings = (qat or {}).get("settings") or {}
    parity = t.get("parity") or {}
    v = s["verdict"]
    chosen = s["selection"]["chosen"]
    return {
        "mode": mode,
        "command": " ".join(BUILD + (["--qat"] if mode == "qat-first" else [])),
        "wall_s": round(wall_s, 1),
        "stages_s": s["stages"],
        "resumed_stages": s["resumed_stages"],
        "student": f"{chosen['family']} {(chosen.get('extra') or {}).get('label') or chosen['arch']}",
        "student_test_acc": s["training"]["final"].get("test_acc"),
        "distill_train_s": s["training"]["final"].get("train_s"),  # the trainer's own clock (epochs only)
        "int8_file": t.get("file"),
        "int8_written": bool(t.get("written")),
        "int8_error": t.get("error"),
        "int8_top1_agreement": parity.get("top1_agreement"),
        "int8_acc_reference": parity.get("acc_reference"),  # the float student on the parity images
        "int8_acc_artifact": parity.get("acc_artifact"),
        "int8_acc_delta_pt": parity.get("acc_delta_pt"),
        "int8_parity_passed": parity.get("passed"),
        "int8_io": (art.get("input") or {}).get("dtype"),
        "attempts": [{k: a.get(k) for k in ("step", "top1_agreement", "acc_delta_pt", "passed", "chosen", "seconds",
                                            "float_share", "error")} for a in attempts],
        "export_tuning_s": round(sum(a.get("seconds") or 0.0 for a in attempts), 2),
        "qat_attempt_s": qat.get("seconds") if qat else None,
        "qat_finetune_s": qat_settings.get("qat_s", qs.get("qat_s")),
        "qat_steps": qat_settings.get("qat_steps", qs.get("qat_steps")),
        "qat_model_agreement": qat_settings.get("qat_model_agreement", qs.get("qat_model_agreement")),
        "quant_settings_kept": {k: qs[k] for k in sorted(qs) if not isinstance(qs[k], (dict, list))},
        "deployed_artifact": Path(v["deployed_artifact"]).name if v.get("deployed_artifact") else None,
        "deployed_precision": v.get("deployed_precision"),
        "deployed_fallback": v.get("deployed_fallback"),
        "deployed_reason": v.get("deployed_reason"),
    }


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(res: dict[str, Any]) -> str:
    q = res["builds"][0]
    lines = [
        "# QAT cost against a real distillation (`edgecompress build --device pixel7 --qat`, built-in demo)",
        "",
        f"Command: `{res['command']}`  ",
        f"Date: {res['date']}, total {res['wall_s'] / 60:.1f} min  ",
        f"Machine: {res['machine']}, {res['cpu']} (int8 flags: {', '.join(res['cpu_int8_flags']) or 'none read'})",
        "",
        "## Target: QAT <= 20% of the distillation time",
        "",
        "| distill stage s | QAT fine-tune s (`qat_s`) | QAT attempt s (fine-tune + convert + parity) | ratio fine-tune | "
        "ratio attempt | met |",
        "|---|---|---|---|---|---|",
        f"| {_num(res['distill_s'], '.1f')} (training loop {_num(q['distill_train_s'], '.1f')}) | {_num(q['qat_finetune_s'], '.1f')} | {_num(q['qat_attempt_s'], '.1f')} | "
        f"{_pct(res['qat_finetune_ratio'])} | {_pct(res['qat_attempt_ratio'])} | "
        f"{'yes' if res['met'] else 'NO'} (on the attempt time) |",
        "",
        "## Builds",
        "",
        "| build | wall s | stages s (resumed) | student | int8 file | agreement | acc float student | int8 acc Δ pt | "
        "gate | steps tried (s) | deployed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in res["builds"]:
        steps = ", ".join(f"{a['step']} {_num(a['seconds'], '.1f')}{' (kept)' if a['chosen'] else ''}" for a in b["attempts"])
        stages = ", ".join(f"{k} {v}" for k, v in b["stages_s"].items())
        lines.append(
            f"| `{b['command']}` | {b['wall_s']} | {stages} ({', '.join(b['resumed_stages']) or 'none'}) | {b['student']} | "
            f"{b['int8_file']} ({'written' if b['int8_written'] else 'withheld'}, io {b['int8_io'] or '-'}) | "
            f"{_pct(b['int8_top1_agreement'])} | {_num(b['int8_acc_reference'], '.1f')}% | "
            f"{_num(b['int8_acc_delta_pt'], '+.2f')} | {'passed' if b['int8_parity_passed'] else 'missed'} | "
            f"{steps or 'plain PTQ passed (one attempt)'} | {b['deployed_artifact']} ({b['deployed_precision']}"
            f"{', fallback' if b['deployed_fallback'] else ''}) |"
        )
    if q.get("qat_model_agreement") is not None:
        lines += ["", f"int8 file vs the fake-quant model (QAT build): {_pct(q['qat_model_agreement'])} agreement."]
    lines += ["", "Deployment reasons:", ""] + [f"- {b['mode']}: {b['deployed_reason']}" for b in res["builds"]]
    lines += ["", "The second build resumes selection and distillation from the first (same run folder), so both "
              "int8 files come from the same distilled student; its stage times show only export and bench.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-ptq", action="store_true", help="only the --qat build")
    ap.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "qat_cost_build.log")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    command = " ".join([".venv/bin/python", "benchmarks/qat_cost.py", *sys.argv[1:]])
    t0 = time.perf_counter()
    builds = []
    with tempfile.TemporaryDirectory(prefix="qat-cost-") as tmp:
        env = dict(os.environ, EDGECOMPRESS_CACHE=str(Path(tmp) / "cache"))
        run_dir = Path(tmp) / "run"
        wall = _build(run_dir, env, ["--qat"], args.log)
        builds.append(_record(run_dir, wall, "qat-first"))
        shutil.copytree(run_dir / "export", Path(tmp) / "export-qat")  # kept for inspection while tmp lives
        if not args.no_ptq:
            wall = _build(run_dir, env, [], args.log)
            builds.append(_record(run_dir, wall, "ptq-first"))
    q = builds[0]
    distill_s = q["stages_s"].get("distill")
    fine, attempt = q["qat_finetune_s"], q["qat_attempt_s"]
    res = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.uname().machine}, {os.cpu_count()} CPUs (shared VM, other jobs running; not timed under a lock)",
        "cpu": cpu_model(),
        "cpu_int8_flags": int8_flags(),
        "target_qat_over_distill": TARGET_RATIO,
        "distill_s": distill_s,
        "qat_finetune_ratio": fine / distill_s if fine is not None and distill_s else None,
        "qat_attempt_ratio": attempt / distill_s if attempt is not None and distill_s else None,
        "builds": builds,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    ratio = res["qat_attempt_ratio"] if res["qat_attempt_ratio"] is not None else res["qat_finetune_ratio"]
    res["met"] = ratio is not None and ratio <= TARGET_RATIO
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "qat_cost.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / "qat_cost.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
