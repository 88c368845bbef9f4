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
from edgecompress.bench.proc import run_command  # noqa: E402
from edgecompress.errors import BenchError  # noqa: E402
from edgecompress.export import ExportConfig, export_module  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# Both data sets of the fidelity set: shapes (hard at 3 epochs: low accuracy, close logits, the
# harder case for int8) and digits (accurate students).
DEFAULT_STUDENTS = ("mobilenet d1 w0.5", "resnet d1 w0.5", "user: SiLU + depthwise + residual",
                    "mobilenet d1 w0.5 @digits (1-ch)", "resnet d1 w0.5 @digits (1-ch)")
PLANS = (("onnx", ("fp32", "int8")), ("tflite", ("fp32", "int8")))


def host_cpu() -> str:
    """Model name plus the int8-relevant x86 features (which kernels the x86 side ran)."""
    info = Path("/proc/cpuinfo").read_text()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.lower().startswith("model name")), "")
    flags = next((set(ln.split(":", 1)[1].split()) for ln in info.splitlines() if ln.startswith("flags")), set())
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name or platform.processor() or platform.machine()} ({', '.join(isa) or 'no AVX2'})"


def on_board(runner: SshRunner, script: str, *, stdin: Path | None = None, stdout: Path | None = None) -> str:
    """One shell command on the board over the runner's ssh options; its stdout (or a file)."""
    done = run_command([*runner.ssh_argv(), runner.host, "--", script], timeout_s=600.0, stdin_path=stdin, stdout_path=stdout)
    if done.returncode != 0:
        raise BenchError(f"{runner.label}: {script.split(';')[0]!r} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout


def board_features(runner: SshRunner) -> dict[str, Any]:
    """What the emulated core advertises to programs (AT_HWCAP via the dynamic loader): the
    kernels XNNPACK may pick follow from it -- asimddp (SDOT) on the A76, not on the A72."""
    out = on_board(runner, "/lib/ld-linux-aarch64.so.1 --list-diagnostics | grep -E 'dl_hwcap=|dl_hwcap2='; uname -m; echo QEMU_CPU=$QEMU_CPU")
    info: dict[str, Any] = {"raw": out.strip()}
    for line in out.split():
        if line.startswith("dl_hwcap="):
            hwcap = int(line.split("=", 1)[1], 16)
            info["hwcap"] = hex(hwcap)
            info["asimddp_sdot"] = bool(hwcap >> 20 & 1)  # HWCAP_ASIMDDP
            info["asimdhp_fp16"] = bool(hwcap >> 10 & 1)  # HWCAP_ASIMDHP
    return info


# Raw encodings (qemu 7.2's disassembler prints SDOT as ".byte"): SDOT by element / vector, and
# the widening multiplies (SMULL / SMLAL, vector) that int8 kernels without SDOT use.
ENCODINGS = {"sdot": ((0xBFC0F400, 0x0F80E000), (0xBFE0FC00, 0x0E809400)),
             "smull_smlal": ((0xBF20FC00, 0x0E20C000), (0xBF20FC00, 0x0E208000))}  # fmt: skip


def kernel_evidence(runner: SshRunner, tflite: Path) -> dict[str, int]:
    """Which int8 instructions the board's LiteRT really ran: one invoke under qemu's
    ``in_asm`` log (every translated guest block), encodings counted here on the host."""
    script = (
        "d=$(mktemp -d); cat > $d/m.tflite; QEMU_LOG=in_asm QEMU_LOG_FILENAME=$d/asm.log python3 -c "
        "'import sys; from ai_edge_litert.interpreter import Interpreter as I; "
        "i = I(model_path=sys.argv[1], num_threads=1); i.allocate_tensors(); i.invoke()' $d/m.tflite 2>/dev/null; "
        "cat $d/asm.log; rm -rf $d"
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "asm.log"
        on_board(runner, script, stdin=tflite, stdout=log)
        counts = dict.fromkeys(ENCODINGS, 0)
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("0x") and len(parts[1]) == 8:
                word = int(parts[1], 16)
                for name, patterns in ENCODINGS.items():
                    counts[name] += any(word & mask == value for mask, value in patterns)
    return counts


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
        f"Date: {res['date']}; host CPU: {res['host_cpu']}; up to {res['n']} validation images per artifact (digits: its "
        f"{min(r['n'] for r in res['rows'])}-image split), one per call; qemu: {res['qemu']}; root build {res['root_build_s']} s; "
        f"wall {res['wall_s']:.0f} s.  ",
        "Boards: real aarch64 Debian + aarch64 wheels under qemu-user "
        + "; ".join(f"{c}: {b['emulated']}, SDOT {'yes' if b['features'].get('asimddp_sdot') else 'no'} (hwcap {b['features'].get('hwcap', '?')})" for c, b in res["boards"].items())
        + ".  ",
        "Kernels the board's LiteRT really ran (one int8 invoke under qemu's `in_asm` log, instruction encodings counted): "
        + "; ".join(f"{c}: {b['kernels']['sdot']} SDOT, {b['kernels']['smull_smlal']} SMULL/SMLAL ({b['kernels']['artifact']})"
                    for c, b in res["boards"].items() if b.get("kernels"))
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
    for fmt, prec in sorted({(r["format"], r["precision"]) for r in rows}):
        sel = [r for r in rows if (r["format"], r["precision"]) == (fmt, prec)]
        for c in cpus:
            vals = [r[f"agree_{c}_vs_x86"] for r in sel]
            diff = max(r[f"max_abs_{c}_vs_x86"] for r in sel)
            out[f"{fmt} {prec}, {c} vs x86"] = (f"top-1 agreement min {min(vals):.4f} over {len(sel)} students "
                                                 f"({sum(v == 1.0 for v in vals)} identical), max |logit diff| {diff:.2g}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", action="append", default=None, help="a name from export_fidelity.ARCHS (repeatable; 'all': every one)")
    ap.add_argument("--cpus", default=",".join(CPUS), help="emulated cores (cortex-a72, cortex-a76)")
    ap.add_argument("--n", type=int, default=200, help="validation images per artifact")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not root_built():
        sys.exit("arm_parity: no arm64 root; build it once: sudo bash scripts/arm_board.sh build")
    torch.set_num_threads(1)
    from edgecompress.data import load_task

    names = args.student or list(DEFAULT_STUDENTS)
    unknown = [n for n in names if n != "all" and n not in {a[0] for a in ARCHS}]
    if unknown:
        sys.exit(f"arm_parity: unknown student {unknown[0]!r} (allowed: {', '.join(a[0] for a in ARCHS)})")
    wanted = [a for a in ARCHS if "all" in names or a[0] in names]
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
                    q8 = next((a for a in arts if a.precision == "full-int8"), None)
                    if q8 is not None and "kernels" not in info[cpus[0]]:
                        for cpu, runner in boards.items():
                            info[cpu]["kernels"] = {"artifact": f"{name} tflite full-int8", **kernel_evidence(runner, Path(q8.path))}
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
