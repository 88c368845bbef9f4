#!/usr/bin/env python3
"""Device-side ONNX Runtime kernel profiler: ONE file, copied beside ``device_runner.py``.

Runs one model with ORT's per-node profiler and prints, per node of the *optimized* graph
(the kernels ORT actually runs: fused Conv+Add+ReLU, NCHWc convs, QLinearConv, ...), its op,
input / output shapes and the median of its counted runs, plus the median whole ``Run()``.
The optimized graph is saved to ``--optimized`` so the host can read kernel sizes, groups and
strides that the profiler does not report. Needs python3, numpy and onnxruntime; reuses the
environment helpers of ``device_runner.py`` (``--helpers``: the folder holding it).

    python3 ort_kernel_probe.py MODEL --optimized OUT.onnx [--threads 1] [--warmup 20]
                                [--runs 100] [--cpus 0] [--helpers DIR]

Prints one ``@@edgecompress {"event": "kernels", ...}`` line, or an ``error`` event (exit 2-4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def _median(values):
    s = sorted(values)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2.0 if n else None


def profile(ort, np, model, optimized, threads, warmup, runs, rng):
    """(per-node rows in execution order, per-run Run() durations in us)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = optimized
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.gettempdir(), f"edgecompress-kprof-{os.getpid()}")
    opts.log_severity_level = 3  # the NCHWc "hardware specific" warning is expected here
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    for _ in range(warmup + runs):
        sess.run(None, feeds)
    path = sess.end_profiling()
    try:
        with open(path) as fh:
            events = json.load(fh)
    finally:
        os.remove(path)
    durs, meta, order = {}, {}, []
    runs_us = []
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            runs_us.append(float(e["dur"]))
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        if name not in durs:
            durs[name] = []
            order.append(name)
            a = e.get("args", {})
            meta[name] = {"op": a.get("op_name", ""), "inputs": a.get("input_type_shape", []),
                          "outputs": a.get("output_type_shape", [])}
        durs[name].append(float(e["dur"]))
    # The k-th occurrence of a node is its run k: drop the warm-up runs, keep medians.
    rows = [dict(meta[n], name=n, us=_median(durs[n][warmup:])) for n in order if len(durs[n]) > warmup]
    return rows, runs_us[warmup:]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--optimized", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--cpus", default="")
    ap.add_argument("--helpers", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args(argv)
    sys.path.insert(0, args.helpers)
    import device_runner as dr  # the same environment probes and pinning as every benchmark

    if not os.path.isfile(args.model):
        dr.fail(dr.EXIT_BAD_INPUT, f"{args.model}: model file not found")
    cpus = [int(c) for c in args.cpus.split(",") if c.strip()]
    affinity = dr.set_affinity(cpus)  # before ORT starts its pool, so every thread inherits it
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        dr.fail(dr.EXIT_NO_RUNTIME, f"kernel profiling needs numpy and onnxruntime on the device ({exc})")
    state_before = dr.device_state()
    t0 = time.perf_counter()
    try:
        rows, runs_us = profile(ort, np, args.model, args.optimized, args.threads, args.warmup, args.runs,
                                np.random.default_rng(0))
    except Exception as exc:  # noqa: BLE001 - reported as one line, never a traceback
        dr.fail(dr.EXIT_RUNTIME_FAILED, f"onnxruntime could not profile {args.model}: {type(exc).__name__}: {exc}")
    dr.emit("kernels", nodes=rows, run_us=_median(runs_us), runs=len(runs_us), seconds=time.perf_counter() - t0,
            runtime_version=ort.__version__, affinity=affinity, cpu_model=dr.cpu_model(),
            governor=dr.governors(cpus or range(os.cpu_count() or 1)), state_before=state_before,
            state_after=dr.device_state())
    return 0


if __name__ == "__main__":
    sys.exit(main())
