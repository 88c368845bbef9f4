"""Host latency table: one student in every format and precision, 1 and 2 threads, with
run-to-run spread; and the same model through the ssh runner on loopback vs the local runner.

What it does:
1. builds a MobileNetV2-style student (``mobilenet`` family, seeded, untrained: latency does not
   depend on the weight values) and exports it with ``edgecompress.export.export_module`` to
   ONNX fp32 / fp16 / int8 (QDQ) and TFLite fp32 / fp16 / int8 (full-integer), cached in --work;
2. measures every (artifact, threads) with ``edgecompress.bench.benchmark`` on the ``host``
   profile (LocalRunner: a fresh python process per measurement, pinned to ``threads`` cores),
   ``--repeats`` rounds interleaved so that slow drift of the shared machine hits all rows alike;
3. starts a throwaway sshd on 127.0.0.1 and measures the ONNX fp32 model ``--repeats`` times
   through SshRunner and LocalRunner alternately, both pinned to CPU 0, and reports the ratio of
   the median p50s (target: within 5%).

Conversions are CPU-heavy but are not timings: run them first, then the timing phase under the
shared lock so no two timing jobs overlap on this machine:

    python benchmarks/host_latency.py --export-only
    flock /tmp/edgecompress-cpu.lock python benchmarks/host_latency.py

Writes ``benchmarks/results/host_latency.json`` and ``host_latency.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import BenchmarkResult, ExportArtifact, Preprocessing, StudentSpec, atomic_write_text
from edgecompress.bench import LocalRunner, SshRunner, benchmark, loopback
from edgecompress.profiles import DeviceProfile, load_profile

RESULTS = Path(__file__).resolve().parent / "results"
RUNTIME_NAMES = {"onnx": "onnxruntime", "tflite": "litert"}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=int, default=128, help="input height = width (3 channels)")
    p.add_argument("--width", type=float, default=1.0, help="student width multiplier")
    p.add_argument("--runs", type=int, default=1000, help="counted runs per measurement (at most --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=3.0, help="time budget per measurement (slow rows count fewer runs)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds per row (run-to-run spread)")
    p.add_argument("--ssh-repeats", type=int, default=15, help="local/ssh pairs (order alternates)")
    p.add_argument("--ssh-runs", type=int, default=1000, help="counted runs per ssh / local measurement")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgecompress-host-latency")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--export-only", action="store_true", help="only build the artifacts (no timing)")
    return p.parse_args()


def export_student(args: argparse.Namespace) -> tuple[list[ExportArtifact], StudentSpec]:
    """Export once per (input, width); later runs reuse the manifests in --work."""
    import torch

    from edgecompress.export import export_module
    from edgecompress.export.config import ExportConfig
    from edgecompress.students import create_student
    from edgecompress.students.families import mobilenet_arch

    shape = (3, args.input, args.input)
    spec = StudentSpec(family="mobilenet", arch=mobilenet_arch(shape, depth=1), input_shape=shape, num_classes=10, width_mult=args.width)
    out = args.work / f"mobilenet_{args.input}_w{args.width:g}"
    manifests = sorted(out.glob("model_*.json"))
    if len(manifests) == 6:
        return [ExportArtifact.load(m) for m in manifests], spec
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_student(spec).eval()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((64, *shape)).astype(np.float32)
    val_x = rng.standard_normal((64, *shape)).astype(np.float32)
    val_y = rng.integers(0, 10, 64)
    pre = Preprocessing(shape, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    # Parity is recorded, not enforced: an untrained net's near-tied logits say nothing about
    # the converter, and this benchmark is about speed.
    cfg = ExportConfig(formats=("onnx", "tflite"), precisions=("fp32", "fp16", "int8"), enforce_parity=False,
                       calibration_size=64, parity_samples=64)  # fmt: skip
    t = time.perf_counter()
    arts = export_module(model, pre, cfg, out, calib, val_x, val_y, progress=True)
    print(f"exported {len(arts)} artifacts in {time.perf_counter() - t:.0f} s to {out}", file=sys.stderr)
    return arts, spec


def measure_table(arts: list[ExportArtifact], threads: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    configs = [(a, t) for a in arts for t in threads]
    results: dict[tuple[str, int], list[BenchmarkResult]] = {(a.path, t): [] for a, t in configs}
    for rnd in range(args.repeats):
        for art, t in configs:
            r = benchmark(art, "host", threads=t, runs=args.runs, warmup=args.warmup, max_seconds=args.max_seconds)
            results[(art.path, t)].append(r)
            print(f"round {rnd + 1}/{args.repeats} {art.format:6s} {art.precision:9s} t{t}: p50 {r.latency.p50_ms:.4f} ms", file=sys.stderr)
    rows = []
    for art, t in configs:
        rs = results[(art.path, t)]
        p50s = [r.latency.p50_ms for r in rs]
        med = statistics.median(p50s)
        rows.append({
            "runtime": RUNTIME_NAMES[art.format],
            "format": art.format,
            "precision": art.precision,
            "threads": t,
            "p50_ms": round(med, 5),
            "p90_ms": round(statistics.median(r.latency.p90_ms for r in rs), 5),
            "std_ms": round(statistics.median(r.latency.std_ms for r in rs), 5),
            "peak_mem_mb": round(statistics.median(r.peak_mem_mb or 0.0 for r in rs), 2),
            "init_ms": round(statistics.median(r.init_ms or 0.0 for r in rs), 2),
            "counted_runs": [r.num_runs for r in rs],
            "p50_ms_per_repeat": [round(x, 5) for x in p50s],
            "spread_pct": round(100 * (max(p50s) - min(p50s)) / med, 1),
            "size_kb": round(art.size_bytes / 1024, 1),
            "file": Path(art.path).name,
            "runtime_version": rs[0].runtime_version,
        })  # fmt: skip
    return rows


def ssh_vs_local(art: ExportArtifact, args: argparse.Namespace) -> dict[str, Any]:
    """Same model, same pinned core: local and ssh-loopback measurements in adjacent pairs.

    Pairing (and alternating which goes first) lets each ssh run be compared with a local run
    taken seconds apart, so load from other jobs on this shared machine hits both sides of a
    pair alike; the headline is the median of the per-pair p50 ratios, and the ratio of the
    two medians is reported beside it.
    """
    host = load_profile("host")
    pinned: DeviceProfile = dataclasses.replace(host, runtime=dataclasses.replace(host.runtime, cpu_mask="0x1"))
    local_p50, ssh_p50 = [], []
    with tempfile.TemporaryDirectory(prefix="ec-sshd-") as d, loopback.loopback_sshd(Path(d)) as server:
        ssh = SshRunner(server.alias, ssh_config=str(server.config), remote_python=sys.executable, remote_dir=d)
        with ssh:
            for i in range(args.ssh_repeats):
                runners = [("local", LocalRunner()), ("ssh", ssh)]
                got = {}
                for name, runner in runners if i % 2 == 0 else runners[::-1]:
                    got[name] = benchmark(art, pinned, runner=runner, threads=1, runs=args.ssh_runs, warmup=args.warmup).latency.p50_ms
                local_p50.append(got["local"])
                ssh_p50.append(got["ssh"])
                print(f"pair {i + 1}/{args.ssh_repeats}: local {got['local']:.4f} ms, ssh {got['ssh']:.4f} ms", file=sys.stderr)
    pair = [s / loc for s, loc in zip(ssh_p50, local_p50, strict=True)]
    paired = statistics.median(pair)
    return {
        "model": f"{Path(art.path).name} ({art.format} {art.precision}), 1 thread, pinned to CPU 0, {args.ssh_runs} counted runs each",
        "local_p50_ms": [round(x, 5) for x in local_p50],
        "ssh_p50_ms": [round(x, 5) for x in ssh_p50],
        "pair_ratios": [round(x, 4) for x in pair],
        "ratio": round(paired, 4),
        "ratio_of_medians": round(statistics.median(ssh_p50) / statistics.median(local_p50), 4),
        "target": "median per-pair ratio within [0.95, 1.05]",
        "met": abs(paired - 1) <= 0.05,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Host latency (`benchmarks/host_latency.py`)",
        "",
        f"Student: {data['student']}. Machine: {data['machine']['cpu_model']}, {data['machine']['cpus']} CPUs — "
        "**a shared 2-core VM with other jobs running**: figures are medians over interleaved repeats, "
        "with the run-to-run spread ((max-min)/median of the per-repeat p50s) beside them; compare rows as ratios "
        "measured in this one run, not as absolute numbers.",
        "",
        f"Each cell: {data['settings']['repeats']} repeats x up to {data['settings']['runs']} counted runs (at most "
        f"{data['settings']['max_seconds']:g} s) after {data['settings']['warmup']} warmup, fresh process per repeat, "
        "pinned to as many cores as threads. "
        "Peak memory = RSS added by loading and running the model (runtime import excluded).",
        "",
        "| runtime | precision | threads | p50 ms | p90 ms | std ms | spread % | peak MB | init ms | size KB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {r['threads']} | {r['p50_ms']:.4f} | {r['p90_ms']:.4f} | {r['std_ms']:.4f} | "
            f"{r['spread_pct']:.1f} | {r['peak_mem_mb']:.1f} | {r['init_ms']:.1f} | {r['size_kb']:.0f} |"
        )
    s = data["ssh_vs_local"]
    lines += [
        "",
        f"## ssh loopback vs local: p50 ratio {data['ssh_vs_local_p50_ratio']:.3f} "
        f"({'met' if s['met'] else 'MISSED'}: target {s['target']})",
        "",
        f"{s['model']}; {len(s['ssh_p50_ms'])} pairs, order alternating. Ratio of the two medians: "
        f"{s['ratio_of_medians']:.3f}. local p50s {s['local_p50_ms']} ms; ssh p50s {s['ssh_p50_ms']} ms; "
        f"per-pair ratios {s['pair_ratios']}.",
        "",
        f"Command: `{data['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    arts, spec = export_student(args)
    if args.export_only:
        return
    threads = [int(t) for t in args.threads.split(",")]
    order = {("onnx", "fp32"): 0, ("onnx", "fp16"): 1, ("onnx", "int8"): 2, ("tflite", "fp32"): 3, ("tflite", "fp16"): 4}
    arts = sorted(arts, key=lambda a: order.get((a.format, a.precision), 9))
    t0 = time.perf_counter()
    rows = measure_table(arts, threads, args)
    onnx_fp32 = next(a for a in arts if (a.format, a.precision) == ("onnx", "fp32"))
    ssh = ssh_vs_local(onnx_fp32, args)
    probe = benchmark(onnx_fp32, "host", runs=5, warmup=1)
    data = {
        "student": f"mobilenet {spec.arch} width {spec.width_mult:g}, input {'x'.join(map(str, spec.input_shape))}, 10 classes (untrained, seeded)",
        "machine": {
            "cpu_model": probe.environment.get("cpu_model", platform.processor()),
            "cpus": probe.environment.get("cpu_count", "?"),
            "governor": probe.environment.get("governor", "unreadable"),
            "note": "shared 2-core VM; other sessions were running; timings taken under /tmp/edgecompress-cpu.lock",
        },
        "settings": {"runs": args.runs, "max_seconds": args.max_seconds, "warmup": args.warmup, "repeats": args.repeats,
                     "ssh_runs": args.ssh_runs, "ssh_pairs": args.ssh_repeats, "threads": threads},
        "rows": rows,
        "ssh_vs_local_p50_ratio": ssh["ratio"],
        "ssh_vs_local": ssh,
        "measure_s": round(time.perf_counter() - t0, 1),
        "command": "flock /tmp/edgecompress-cpu.lock python benchmarks/host_latency.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "host_latency.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(args.out / "host_latency.md", markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
