"""ARM parity: do int8 and fp32 artifacts agree on emulated Cortex-A72 / A76 as they do on x86?

The export gate runs ONNX Runtime and LiteRT on this x86 host (AVX2 / AVX-512 kernels). A Pi 4
(Cortex-A72, ARMv8.0: NEON widening multiplies for int8) and a Pi 5 (Cortex-A76, ARMv8.2: SDOT)
run other kernels. This script runs the same artifacts on the boards of ``scripts/arm_board.sh``
-- real aarch64 Debian, the real aarch64 LiteRT / ONNX Runtime wheels, qemu-user emulating the
core so that the runtimes pick that core's kernels -- and compares top-1 with x86 and PyTorch.

What it does:
1. trains a few students of the export-fidelity set (``benchmarks/export_fidelity.py``) for
   ``--epochs`` on built-in data, exports each with ``edgecompress.export.export_module`` to ONNX
   fp32 / int8 (QDQ) and TFLite fp32 / full-int8 (gate not enforced: failures are measured);
2. runs every artifact over the first ``--n`` validation images, one image per call, with
   ``edgecompress.bench.device_parity.device_logits``: locally (x86) and over ssh on each board;
3. reports top-1 agreement with PyTorch, ARM-vs-x86 agreement, accuracies and max |ARM - x86|.

    sudo bash scripts/arm_board.sh build          # once, ~10-20 min, cached
    .venv/bin/python benchmarks/arm_parity.py     # starts both boards (idempotent)

Timings from the boards are emulator timings and are reported only as run times of this script.
Writes ``benchmarks/results/arm_parity.json`` and ``arm_parity.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_fidelity import ARCHS, _arrays, train  # noqa: E402 - the sibling benchmark's student set

from edgecompress.artifacts import atomic_write_text  # noqa: E402
from edgecompress.bench import LocalRunner, SshRunner  # noqa: E402
from edgecompress.bench.arm_board import CPUS, build_seconds, root_built, start_board  # noqa: E402
from edgecompress.bench.device_parity import DeviceLogits, device_logits, to_layout  # noqa: E402
from edgecompress.export import ExportConfig, export_module  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_STUDENTS = ("mobilenet d1 w0.5", "resnet d1 w0.5", "test_mobilenet (SE, hardswish)", "user: SiLU + depthwise + residual")
PLANS = (("onnx", ("fp32", "int8")), ("tflite", ("fp32", "int8")))


def host_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def board_features(runner: SshRunner) -> dict[str, Any]:
    """What the emulated core advertises to programs (AT_HWCAP via the dynamic loader): the
    kernels XNNPACK may pick follow from it -- asimddp (SDOT) on the A76, not on the A72."""
    done = runner._ssh("/lib/ld-linux-aarch64.so.1 --list-diagnostics | grep -E 'dl_hwcap=|dl_hwcap2='; uname -m; echo QEMU_CPU=$QEMU_CPU",
                       what="read the emulated cpu's features")  # fmt: skip
    info: dict[str, Any] = {"raw": done.stdout.strip()}
    for line in done.stdout.split():
        if line.startswith("dl_hwcap="):
            hwcap = int(line.split("=", 1)[1], 16)
            info["hwcap"] = hex(hwcap)
            info["asimddp_sdot"] = bool(hwcap >> 20 & 1)  # HWCAP_ASIMDDP
            info["asimdhp_fp16"] = bool(hwcap >> 10 & 1)  # HWCAP_ASIMDHP
    return info


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean() * 100)


def rows_for(name: str, arts: list[Any], ref: np.ndarray, vx: np.ndarray, vy: np.ndarray, boards: dict[str, SshRunner]) -> list[dict[str, Any]]:
    rows = []
    for art in arts:
        x = to_layout(vx, art.input.layout)
        x86 = device_logits(LocalRunner(device="host"), art.path, x)
        row: dict[str, Any] = {
            "student": name, "format": art.format, "precision": art.precision, "n": int(len(vy)),
            "acc_pytorch": accuracy(ref, vy), "acc_x86": accuracy(x86.logits, vy),
            "agree_x86_vs_pytorch": agreement(x86.logits, ref),
            "runtime_x86": f"{x86.runtime} {x86.runtime_version}",
        }  # fmt: skip
        for cpu, runner in boards.items():
            t0 = time.perf_counter()
            arm: DeviceLogits = device_logits(runner, art.path, x, timeout_s=3600.0)
            row[f"acc_{cpu}"] = accuracy(arm.logits, vy)
            row[f"agree_{cpu}_vs_pytorch"] = agreement(arm.logits, ref)
            row[f"agree_{cpu}_vs_x86"] = agreement(arm.logits, x86.logits)
            row[f"max_abs_{cpu}_vs_x86"] = float(np.abs(arm.logits - x86.logits).max())
            row[f"runtime_{cpu}"] = f"{arm.runtime} {arm.runtime_version}"
            row[f"emulated_{cpu}"] = arm.emulated
            row[f"wall_s_{cpu}"] = round(time.perf_counter() - t0, 1)  # emulator time, not device time
        print(json.dumps({k: v for k, v in row.items() if not k.startswith(("runtime", "emulated"))}), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _f(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(res: dict[str, Any]) -> str:
    cpus = res["boards"].keys()
    lines = [
        "# ARM parity: emulated Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5) vs x86",
        "",
        f"Command: `{res['command']}`  ",
        f"Date: {res['date']}; host CPU: {res['host_cpu']}; {res['n']} validation images per artifact, one per call.  ",
        "Boards: real aarch64 Debian + aarch64 wheels under qemu-user "
        + "; ".join(f"{c}: {b['emulated']}, SDOT {'yes' if b['features'].get('asimddp_sdot') else 'no'} (hwcap {b['features'].get('hwcap', '?')})" for c, b in res["boards"].items())
        + ".  ",
        "Emulated run times are not device latencies; only the outputs are compared.",
        "",
        "| student | artifact | acc PyTorch % | agree x86/PT | " + " | ".join(f"agree {c}/PT | agree {c}/x86 | max abs {c}-x86" for c in cpus)
        + " | acc x86 % | " + " | ".join(f"acc {c} %" for c in cpus) + " |",
        "|" + "---|" * (4 + 3 * len(cpus) + 1 + len(cpus)),
    ]
    for r in res["rows"]:
        cells = [r["student"], f"{r['format']} {r['precision']}", _f(r["acc_pytorch"], ".1f"), _f(r["agree_x86_vs_pytorch"], ".4f")]
        for c in cpus:
            cells += [_f(r.get(f"agree_{c}_vs_pytorch"), ".4f"), _f(r.get(f"agree_{c}_vs_x86"), ".4f"), _f(r.get(f"max_abs_{c}_vs_x86"), ".2g")]
        cells.append(_f(r["acc_x86"], ".1f"))
        cells += [_f(r.get(f"acc_{c}"), ".1f") for c in cpus]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Summary", ""]
    lines += [f"- {k}: {v}" for k, v in res["summary"].items()]
    return "\n".join(lines) + "\n"


def summarize(rows: list[dict[str, Any]], cpus: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prec in ("fp32", "int8", "full-int8"):
        sel = [r for r in rows if r["precision"] == prec]
        if not sel:
            continue
        for c in cpus:
            vals = [r[f"agree_{c}_vs_x86"] for r in sel]
            out[f"{prec} {c} vs x86: min agreement"] = f"{min(vals):.4f} over {len(sel)} artifacts ({sum(v == 1.0 for v in vals)} identical top-1)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", default=",".join(DEFAULT_STUDENTS), help="comma-separated names from export_fidelity.ARCHS, or 'all'")
    ap.add_argument("--cpus", default=",".join(CPUS), help="emulated cores (cortex-a72, cortex-a76)")
    ap.add_argument("--n", type=int, default=200, help="validation images per artifact")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not root_built():
        sys.exit("arm_parity: no arm64 root; build it once: sudo bash scripts/arm_board.sh build")
    torch.set_num_threads(1)
    from edgecompress.data import load_task

    wanted = [a for a in ARCHS if args.students == "all" or a[0] in args.students.split(",")]
    cpus = [c.strip() for c in args.cpus.split(",") if c.strip()]
    t_start = time.perf_counter()
    boards: dict[str, SshRunner] = {}
    info: dict[str, Any] = {}
    for cpu in cpus:
        b = start_board(cpu)
        boards[cpu] = SshRunner(b.alias, ssh_config=b.ssh_config, device=b.profile)
        boards[cpu].check()
        info[cpu] = {"alias": b.alias, "profile": b.profile, "features": board_features(boards[cpu])}
    qemu = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[:1]
    rows: list[dict[str, Any]] = []
    tasks: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="arm-parity-") as tmp:
            for name, source, build in wanted:
                task = tasks.setdefault(source, load_task(source, progress=False))
                seed = [a[0] for a in ARCHS].index(name)
                torch.manual_seed(seed)
                model = build(task.input_shape, task.num_classes)
                train(model, task, args.epochs, seed=seed)
                calib, _ = _arrays(task.calibration, 256)
                vx, vy = _arrays(task.val, args.n)
                with torch.no_grad():
                    ref = model.eval()(torch.from_numpy(vx)).numpy()
                for fmt, precisions in PLANS:
                    cfg = ExportConfig(formats=(fmt,), precisions=precisions, enforce_parity=False, parity_samples=len(vx))
                    arts = export_module(model, task.preprocessing, cfg, Path(tmp) / f"s{seed}" / fmt, calib, vx, vy, progress=False)
                    rows += rows_for(name, arts, ref, vx, vy, boards)
    finally:
        for r in boards.values():
            r.close()
    for cpu in cpus:
        info[cpu]["emulated"] = next((r[f"emulated_{cpu}"] for r in rows if r.get(f"emulated_{cpu}")), "")
    res = {
        "command": " ".join([".venv/bin/python", "benchmarks/arm_parity.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host_cpu": host_cpu(),
        "qemu": qemu[0] if qemu else "?",
        "root_build_s": build_seconds(),
        "n": args.n,
        "boards": info,
        "rows": rows,
        "summary": summarize(rows, cpus),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "arm_parity.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / "arm_parity.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
