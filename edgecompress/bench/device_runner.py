#!/usr/bin/env python3
"""edgecompress device-side benchmark runner: ONE self-contained file.

It is copied to the device (or run locally in a fresh process) and needs only python3 (3.7+),
numpy and one runtime: ``onnxruntime`` for .onnx, ``ai_edge_litert`` or ``tflite_runtime``
for .tflite -- what Raspberry Pi OS users install. It must never import edgecompress.

    python3 device_runner.py MODEL [--threads N] [--warmup N] [--runs N]
                             [--max-seconds S] [--cpus 0,1] [--runtime NAME]
                             [--sustained S] [--cooldown S]

Every line it prints for the host starts with ``@@edgecompress `` followed by one JSON
object with an ``event`` key: ``start`` (runtime, environment, device state), ``init`` (load
times), ``samples`` (a batch of latencies, streamed so a run killed half-way still leaves
partial results), ``bin`` (sustained runs: latency per time slice), then ``result`` (with the
device state after the run) or ``error``. Exit codes: 0 ok, 2 bad model or arguments,
3 no runtime for this model, 4 the runtime failed while running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

MARKER = "@@edgecompress "
EXIT_BAD_INPUT = 2
EXIT_NO_RUNTIME = 3
EXIT_RUNTIME_FAILED = 4

# Runtime candidates per model suffix, in the order tried by --runtime auto.
RUNTIMES = {
    ".onnx": ("onnxruntime",),
    ".tflite": ("ai_edge_litert", "tflite_runtime"),
}
DISTRIBUTIONS = {"onnxruntime": "onnxruntime", "ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
RUNTIME_LABEL = {"onnxruntime": "onnxruntime", "ai_edge_litert": "litert", "tflite_runtime": "tflite_runtime"}
# Stream samples at least this often so that a timeout loses at most this much work.
FLUSH_EVERY_S = 0.5
FLUSH_EVERY_N = 500


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(MARKER + json.dumps(fields) + "\n")
    sys.stdout.flush()


def fail(code, message, **extra):
    emit("error", message=message, exit_code=code, **extra)
    sys.stderr.write("device_runner: " + message + "\n")
    sys.exit(code)


# ------------------------------------------------------------------------- environment


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def cpu_model():
    info = _read("/proc/cpuinfo")
    found = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "model", "hardware", "cpu part") and key not in found:
            found[key] = value.strip()
    # x86 has "model name"; a Raspberry Pi has "Model" (board) and arm64 kernels "Hardware".
    for key in ("model name", "model", "hardware"):
        if found.get(key) and not found[key].isdigit():
            return found[key]
    return platform.processor() or platform.machine()


def governors(cpus):
    out = {}
    for cpu in cpus:
        gov = _read(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")
        if gov:
            out[cpu] = gov
    values = sorted(set(out.values()))
    return ",".join(values) if values else "unreadable"


def _status_mb(field):
    """VmRSS / VmHWM of this process in MB from /proc (Linux); None where unreadable."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            try:
                return int(line.split()[1]) / 1024.0
            except (IndexError, ValueError):
                return None
    return None


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0) so the peak covers only the model's work."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    except (ImportError, OSError):
        return None


def set_affinity(cpus):
    """Pin this process (and the runtime threads it will start) to ``cpus``; say what happened."""
    if not cpus:
        return "not pinned"
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (the OS has no sched_setaffinity)"
    try:
        os.sched_setaffinity(0, set(cpus))
    except (OSError, ValueError) as exc:
        return f"not pinned (sched_setaffinity({cpus}) failed: {exc})"
    return "pinned to cpus " + ",".join(str(c) for c in sorted(cpus))


def emulation():
    """Why this process runs under an emulator ("" when it seems not to).

    qemu-user passes the host's /proc/cpuinfo through, so an aarch64 python that reads an x86
    cpuinfo is emulated; the arm_board.sh root also carries a marker file and sets QEMU_CPU.
    """
    reasons = []
    if os.path.exists("/etc/edgecompress-emulated"):
        reasons.append("arm_board.sh root")
    qemu_cpu = os.environ.get("QEMU_CPU")
    if qemu_cpu:
        reasons.append("QEMU_CPU=" + qemu_cpu)
    machine = platform.machine().lower()
    info = _read("/proc/cpuinfo")
    if machine in ("aarch64", "arm64", "armv7l", "armv8l") and ("GenuineIntel" in info or "AuthenticAMD" in info):
        reasons.append(machine + " user space on an x86 cpu")
    return ("qemu-user (" + "; ".join(reasons) + ")") if reasons else ""


def device_state():
    """Thermal zones (C), frequency governors and current frequencies (MHz), where readable.

    Read before and after a run: a board that heats up throttles, and latency follows."""
    temps, govs, freqs = {}, {}, {}
    base = "/sys/class/thermal"
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        zones = []
    for zone in zones:
        raw = _read(f"{base}/{zone}/temp")
        try:
            temps[_read(f"{base}/{zone}/type") or zone] = int(raw) / 1000.0
        except ValueError:
            continue
    for cpu in range(os.cpu_count() or 1):
        d = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        gov = _read(d + "/scaling_governor")
        if gov:
            govs[f"cpu{cpu}"] = gov
        cur = _read(d + "/scaling_cur_freq")
        if cur.isdigit():
            freqs[f"cpu{cpu}"] = int(cur) / 1000.0
    return {"temperatures_c": temps, "governors": govs, "freqs_mhz": freqs}


def dist_version(dist, module):
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - importlib.metadata is missing on 3.7 and a wheel may lack metadata
        return str(getattr(module, "__version__", "unknown"))


# ------------------------------------------------------------------------- runtimes


def import_runtime(name):
    if name == "onnxruntime":
        import onnxruntime

        return onnxruntime
    if name == "ai_edge_litert":
        from ai_edge_litert import interpreter

        return interpreter
    if name == "tflite_runtime":
        from tflite_runtime import interpreter

        return interpreter
    raise ImportError("unknown runtime " + name)


def pick_runtime(model, requested):
    suffix = os.path.splitext(model)[1].lower()
    candidates = RUNTIMES.get(suffix)
    if candidates is None:
        fail(EXIT_BAD_INPUT, f"{model}: unsupported model file (allowed: .onnx, .tflite)")
    if requested != "auto":
        if requested not in candidates:
            fail(EXIT_BAD_INPUT, f"runtime {requested!r} cannot run {suffix} files (allowed: {', '.join(candidates)})")
        candidates = (requested,)
    errors = []
    for name in candidates:
        try:
            return name, import_runtime(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    wanted = " or ".join("pip install " + DISTRIBUTIONS[c] for c in candidates)
    fail(EXIT_NO_RUNTIME, f"no runtime for {suffix} files on this device ({'; '.join(errors)}); {wanted}")
    return None, None  # unreachable: fail() exits


def random_input(np, shape, dtype, rng):
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -128), min(int(info.max), 255)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    fail(EXIT_BAD_INPUT, f"model input dtype {dtype} is not supported")
    return None


ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def load_onnxruntime(ort, np, model, threads, rng):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {}
    inputs = []
    for i in sess.get_inputs():
        dtype = ORT_TYPES.get(i.type)
        if dtype is None:
            fail(EXIT_BAD_INPUT, f"{model}: input {i.name!r} has type {i.type} (not supported)")
        feeds[i.name] = random_input(np, i.shape, dtype, rng)
        inputs.append({"name": i.name, "shape": list(feeds[i.name].shape), "dtype": dtype})

    def run_once():
        sess.run(None, feeds)

    return run_once, inputs


def load_tflite(interpreter_mod, np, model, threads, rng):
    interp = interpreter_mod.Interpreter(model_path=model, num_threads=threads)
    for d in interp.get_input_details():
        sig = d.get("shape_signature")
        if sig is not None and any(int(x) < 0 for x in sig):
            interp.resize_tensor_input(d["index"], [int(x) if int(x) > 0 else 1 for x in sig])
    interp.allocate_tensors()
    inputs = []
    for d in interp.get_input_details():
        x = random_input(np, [int(s) for s in d["shape"]], d["dtype"], rng)
        interp.set_tensor(d["index"], x)
        inputs.append({"name": d["name"], "shape": list(x.shape), "dtype": str(np.dtype(d["dtype"]))})
    # Inputs stay set between invokes, exactly as benchmark_model does.
    return interp.invoke, inputs


# ------------------------------------------------------------------------- timing loops


def count_runs(run_once, args, samples, pending):
    """Burst mode: --runs counted runs (or until --max-seconds), every sample streamed."""
    perf = time.perf_counter
    start = perf()
    deadline = start + args.max_seconds if args.max_seconds else None
    last_flush = start
    while len(samples) < args.runs:
        t = perf()
        run_once()
        now = perf()
        ms = (now - t) * 1e3
        samples.append(ms)
        pending.append(ms)
        if now - last_flush >= FLUSH_EVERY_S or len(pending) >= FLUSH_EVERY_N:
            emit("samples", ms=pending)
            pending[:] = []
            last_flush = perf()
        if deadline is not None and now >= deadline:
            break


def _pct(s, q):
    """Percentile of a sorted list, linear between closest ranks (numpy's and the host's rule)."""
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _stats(values):
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {"n": len(s), "p50_ms": _pct(s, 0.5), "p99_ms": _pct(s, 0.99), "mean_ms": sum(s) / len(s)}


class Sustained:
    """Sustained mode: run back to back for ``duration_s`` and summarize latency over time.

    A tiny model runs millions of times in half an hour, too many samples to stream or keep, so
    the summary is made here: per-slice p50 / p99 (``bin`` events, streamed), exact statistics
    of the first and last window (a minute each for runs of 3 minutes or more, else a tenth of
    the run), and a uniform sample of RESERVOIR runs for the overall distribution.
    """

    RESERVOIR = 20000
    BINS = 120

    def __init__(self, duration_s, seed):
        import array
        import random

        self.duration_s = duration_s
        self.window_s = 60.0 if duration_s >= 180.0 else duration_s / 10.0
        self.bin_s = max(duration_s / self.BINS, 0.25)
        self.first, self.last, self.bin = array.array("d"), array.array("d"), array.array("d")
        self.reservoir = []
        self.rng = random.Random(seed)
        self.n = 0
        self.bin_end = self.bin_s

    def add(self, t_s, ms):
        self.n += 1
        if t_s < self.window_s:
            self.first.append(ms)
        if t_s >= self.duration_s - self.window_s:
            self.last.append(ms)
        if len(self.reservoir) < self.RESERVOIR:
            self.reservoir.append(ms)
        else:
            j = self.rng.randrange(self.n)  # Algorithm R: every run equally likely to be kept
            if j < self.RESERVOIR:
                self.reservoir[j] = ms
        while t_s >= self.bin_end:
            self.flush_bin()
        self.bin.append(ms)

    def flush_bin(self):
        if self.bin:
            emit("bin", t_s=round(self.bin_end, 3), **_stats(self.bin))
        self.bin = type(self.bin)("d")
        self.bin_end += self.bin_s

    def run(self, run_once):
        perf = time.perf_counter
        start = perf()
        while True:
            t = perf()
            run_once()
            now = perf()
            self.add(t - start, (now - t) * 1e3)
            if now - start >= self.duration_s:
                break

    def finish(self):
        """Emit the last slice, the windows and the overall sample; return the number of runs."""
        if self.bin:
            emit("bin", t_s=round(self.bin_end, 3), **_stats(self.bin))
        emit("samples", ms=self.reservoir)
        emit("sustained", duration_s=self.duration_s, window_s=self.window_s, bin_s=self.bin_s, num_runs=self.n,
             first=_stats(self.first), last=_stats(self.last), sampled=self.n > len(self.reservoir))
        return self.n


# ------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="device_runner.py", description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--cpus", default="", help="comma-separated CPU ids to pin to (empty: no pinning)")
    p.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "ai_edge_litert", "tflite_runtime"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sustained", type=float, default=None, help="run continuously for S seconds (ignores --runs)")
    p.add_argument("--cooldown", type=float, default=0.0, help="sleep S seconds before loading the model")
    args = p.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.runs < 1:
        fail(EXIT_BAD_INPUT, "threads and runs must be >= 1 and warmup >= 0")
    if args.max_seconds is not None and args.max_seconds <= 0:
        fail(EXIT_BAD_INPUT, "--max-seconds must be > 0")
    if args.sustained is not None and args.sustained <= 0:
        fail(EXIT_BAD_INPUT, "--sustained must be > 0")
    if args.cooldown < 0:
        fail(EXIT_BAD_INPUT, "--cooldown must be >= 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(args.model):
        fail(EXIT_BAD_INPUT, f"{args.model}: model file not found")
    try:
        cpus = [int(c) for c in args.cpus.split(",") if c.strip()]
    except ValueError:
        fail(EXIT_BAD_INPUT, f"--cpus {args.cpus!r}: expected comma-separated integers")
    # Pin before the runtime starts its thread pool so that every worker inherits the mask.
    affinity = set_affinity(cpus)
    try:
        import numpy as np
    except ImportError:
        fail(EXIT_NO_RUNTIME, "numpy is not installed on this device (pip install numpy)")
    t_import = time.perf_counter()
    name, mod = pick_runtime(args.model, args.runtime)
    import_ms = (time.perf_counter() - t_import) * 1e3
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "system": platform.system() + " " + platform.release(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "affinity": affinity,
        "governor": governors(allowed or range(os.cpu_count() or 1)),
        "emulated": emulation(),
    }
    if args.cooldown:
        # Let a board that an earlier run heated up settle before this one is timed.
        time.sleep(args.cooldown)
    emit("start", state_before=device_state(), cooldown_s=args.cooldown, runtime=RUNTIME_LABEL[name], runtime_module=name,
         runtime_version=dist_version(DISTRIBUTIONS[name], mod), environment=env, import_ms=import_ms)

    rng = np.random.default_rng(args.seed)
    baseline_mb = _status_mb("VmRSS")
    peak_reset = reset_peak_rss()
    try:
        t0 = time.perf_counter()
        if name == "onnxruntime":
            run_once, inputs = load_onnxruntime(mod, np, args.model, args.threads, rng)
        else:
            run_once, inputs = load_tflite(mod, np, args.model, args.threads, rng)
        init_ms = (time.perf_counter() - t0) * 1e3
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - any runtime failure is reported, never a traceback
        fail(EXIT_RUNTIME_FAILED, f"{name} could not load {args.model}: {type(exc).__name__}: {exc}")
    emit("init", init_ms=init_ms, inputs=inputs)

    samples = []
    pending = []
    sustained = None
    try:
        # The first inference is the first warmup run (benchmark_model's convention); with no
        # warmup it is also the first counted sample.
        t = time.perf_counter()
        run_once()
        first_ms = (time.perf_counter() - t) * 1e3
        emit("first", first_inference_ms=first_ms)
        if args.warmup == 0 and not args.sustained:
            samples.append(first_ms)
            pending.append(first_ms)
        for _ in range(max(args.warmup - 1, 0)):
            run_once()
        if args.sustained:
            sustained = Sustained(args.sustained, args.seed)
            sustained.run(run_once)
        else:
            count_runs(run_once, args, samples, pending)
    except Exception as exc:  # noqa: BLE001
        if pending:
            emit("samples", ms=pending)
        fail(EXIT_RUNTIME_FAILED, f"{name} failed while running {args.model} after {len(samples)} runs: {type(exc).__name__}: {exc}")
    if pending:
        emit("samples", ms=pending)
    num_runs = len(samples)
    if sustained is not None:
        num_runs = sustained.finish()
    peak = peak_rss_mb()
    # Memory attributable to the model: peak RSS while loading and running it, minus the RSS
    # of python + numpy + the runtime before the model was loaded.
    model_peak = (peak - baseline_mb) if (peak is not None and baseline_mb is not None and peak_reset) else None
    emit("result", num_runs=num_runs, warmup_runs=args.warmup, threads=args.threads, state_after=device_state(),
         first_inference_ms=first_ms, init_ms=init_ms, peak_mem_mb=model_peak,
         process_peak_rss_mb=peak, baseline_rss_mb=baseline_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
