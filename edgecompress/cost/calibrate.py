"""``calibrate``: probe models -> export -> kernels and whole models measured on the device -> fit -> save.

Two stages. Where the runtime times kernels apart (ONNX Runtime's per-node profiler, see
``kernels.py``), every probe is profiled and a predictor per kernel type is fitted on the
kernel samples; then the probes are timed whole, unprofiled, and the whole-model fit pulls
towards the kernel fit (ridge, strength by leave-one-out), which corrects the profiler's own
overhead and fixes the per-inference term. Elsewhere (LiteRT's Python interpreter reports no
per-op times) the whole-model stage alone runs, pulling towards the profile's priors. The
leave-one-out residuals give the 90% split-conformal interval ``select`` checks budgets with.

Probes span the search space the selector walks (every family x depth, widths spread evenly in
log space between the smallest and largest multiplier), so the fit sees the kernel mix and
sizes it will be asked about. Each probe is exported with the real exporter
(``edgecompress.export``: torch.onnx + ORT quantization, onnx2tf for TFLite) and measured with
the real harness (``edgecompress.bench``: a fresh process per run, pinned, median of the
counted runs). On a shared machine a co-running process can only slow a run down, so each
model is measured ``repeats`` times, interleaved with the others, and the fastest median is
kept. Interference comes in bursts that can last a whole round (seen on a shared AMD EPYC VM:
rounds of the same file 30-40% apart), so a model whose two fastest rounds still disagree by
more than ``AGREE_PCT`` gets extra rounds, up to ``EXTRA_ROUNDS``, until two agree: the
fastest median is then confirmed by a second round rather than a lucky or a disturbed one.
Slow states that last minutes fool that rule (two slow rounds agree); a sentinel model timed
between blocks of measurements rejects the rounds taken in them (``rounds.py``).
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import Preprocessing, StudentSpec
from edgecompress.bench.runner import mask_to_cpus
from edgecompress.cost.calibration import Calibration, Measurement, now_iso
from edgecompress.cost.kernels import KernelSample
from edgecompress.cost.rounds import EXTRA_ROUNDS, run_rounds
from edgecompress.errors import CalibrationError, EdgeCompressError
from edgecompress.profiles import DeviceProfile
from edgecompress.runtimes import get_runtime
from edgecompress.students.families import DEPTHS, WIDTHS, mobilenet_arch, resnet_arch

ARCH_FNS: dict[str, Callable[[tuple[int, int, int], int], str]] = {"mobilenet": mobilenet_arch, "resnet": resnet_arch}


def _van_der_corput(i: int, base: int = 2) -> float:
    """Low-discrepancy sequence in [0, 1): the (family, depth) combinations' starting offsets, spread for any count."""
    q, denom = 0.0, 1.0
    while i:
        denom *= base
        i, r = divmod(i, base)
        q += r / denom
    return q


_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0  # 1 / golden ratio: the most evenly spreading step


def _width(u: float) -> float:
    lo, hi = math.log(WIDTHS[0]), math.log(WIDTHS[-1])
    return round(math.exp(lo + u * (hi - lo)), 3)


def probe_specs(n: int, input_shape: tuple[int, int, int], num_classes: int = 10,
                families: Sequence[str] = ("mobilenet", "resnet")) -> list[StudentSpec]:
    """``n`` probes cycling (family, depth) combinations; each combination's widths cover the
    whole width range.

    The j-th probe of combination c sits at log-width fraction ``frac(vdc(c + 1) + j / phi)``: a
    golden-ratio (Kronecker) sequence per combination, each started at a different van der
    Corput offset so the combinations interleave. Any prefix of the sequence is a good design,
    so ``calibrate`` re-runs extend it. (One van der Corput sequence over the probe index, the
    design before, gave each combination a narrow band when the sequence's base divided the
    number of combinations: ResNet d3 probes only reached width 0.46, and the held-out ResNets
    of width 1.5-2.0 were extrapolations, mispredicted by up to 27% in int8. Probing both ends
    of every combination first was tried next and was worse on a fresh held-out seed: ORT 90% /
    73% within ±10% against 97% / 93%; the narrowest nets (channels rounded to 4 or 8) probably
    pull the linear fit. docs/students-and-cost.md has every seed.)
    """
    combos = [(f, d) for d in DEPTHS for f in families]
    out = []
    for i in range(n):
        c, j = i % len(combos), i // len(combos)
        fam, depth = combos[c]
        w = _width((_van_der_corput(c + 1, 2) + j * _INV_PHI) % 1.0)
        out.append(StudentSpec(fam, ARCH_FNS[fam](input_shape, depth), input_shape, num_classes, w,
                               extra={"label": f"d{depth} w{w:g}", "probe": i}))
    return out


def random_students(n: int, input_shape: tuple[int, int, int], num_classes: int = 10, seed: int = 1,
                    families: Sequence[str] = ("mobilenet", "resnet")) -> list[StudentSpec]:
    """``n`` students drawn uniformly from the search space (continuous width), for held-out tests."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fam, depth, w = rng.choice(list(families)), rng.choice(DEPTHS), _width(rng.random())
        out.append(StudentSpec(fam, ARCH_FNS[fam](input_shape, depth), input_shape, num_classes, w,
                               extra={"label": f"d{depth} w{w:g}"}))
    return out


def _tflite(onnx_fp32: Path, calib: np.ndarray, precisions: set[str], out_dir: Path) -> dict[str, Path]:
    """TFLite via the exporter's offline onnx2tf runner (which converts a static-batch copy).

    One conversion writes the float32 and the full-integer model: ~15 s per probe saved."""
    from edgecompress.export.tflite_recipes import run_onnx2tf

    work = out_dir / "tflite-work"
    work.mkdir(parents=True, exist_ok=True)
    folder = run_onnx2tf(onnx_fp32, work / "o2t", calib, layout="nhwc", integer="int8" in precisions, dynamic=False,
                         io_dtype="int8", timeout_s=900, log_path=out_dir / "onnx2tf.log")
    out = {}
    for precision in sorted(precisions):
        name = {"int8": "full_integer_quant", "fp32": "float32"}[precision]
        # onnx2tf names its outputs after the ONNX file's stem (model_fp32 -> model_fp32_float32.tflite)
        path = folder / f"{onnx_fp32.stem}_{name}.tflite"
        if not path.is_file():
            raise CalibrationError(f"onnx2tf wrote no {path.name} (log: {out_dir / 'onnx2tf.log'})")
        out[precision] = out_dir / f"model_{precision}.tflite"
        path.replace(out[precision])
    return out


def export_spec(spec: StudentSpec, keys: Sequence[tuple[str, str]], out_dir: Path, seed: int = 0) -> dict[tuple[str, str], Path]:
    """Export a randomly initialised ``spec`` for every (runtime, precision); returns the model files.

    ONNX goes through ``edgecompress.export.export_module`` (its fp32 / QDQ-int8 recipes);
    TFLite through the exporter's onnx2tf runner (a static-batch copy, see ``static_batch_copy``).
    """
    import torch

    from edgecompress.export import ExportConfig, export_module
    from edgecompress.students import create_student

    torch.manual_seed(seed)
    model = create_student(spec).eval()
    c = spec.input_shape[0]
    rng = np.random.default_rng(seed)
    calib = rng.standard_normal((16, *spec.input_shape)).astype(np.float32)
    onnx_precisions = {"fp32"} | {p for r, p in keys if get_runtime(r).artifact_format == "onnx"}
    # Latency does not depend on the weights' values; parity of random weights is meaningless,
    # so it is recorded but not enforced.
    cfg = ExportConfig(formats=("onnx",), precisions=tuple(sorted(onnx_precisions)), enforce_parity=False,
                       parity_samples=8, calibration_size=16)
    pre = Preprocessing(spec.input_shape, (0.0,) * c, (1.0,) * c)
    arts = export_module(model, pre, cfg, out_dir, calib, calib[:8], np.zeros(8, np.int64), progress=False)
    onnx_files = {a.precision: Path(a.path) for a in arts}
    tfl_precisions = {p for r, p in keys if get_runtime(r).artifact_format != "onnx"}
    tfl = _tflite(onnx_files["fp32"], calib, tfl_precisions, out_dir) if tfl_precisions else {}
    return {(r, p): onnx_files[p] if get_runtime(r).artifact_format == "onnx" else tfl[p] for r, p in keys}


def measure_file(path: Path, profile: DeviceProfile, runs: int, warmup: int,
                 **runner_kw: Any) -> tuple[float, float, float, float | None]:
    """(p50, p90, std) in ms and peak memory over the runtime's baseline (MB) of one fresh-process run."""
    from edgecompress.bench import benchmark

    r = benchmark(path, profile, runs=runs, warmup=warmup, **runner_kw)
    if r.emulated:
        # An emulator's timings say nothing about the device's: fitting on them would be worse
        # than the priors.
        raise CalibrationError(
            f"device {profile.name}: refusing to calibrate on emulated latency ({r.emulated}); "
            "measure on the real device (emulated boards are for parity and harness checks only)"
        )
    return r.latency.p50_ms, r.latency.p90_ms, r.latency.std_ms, r.peak_mem_mb


def measure_all(items: list[tuple[StudentSpec, str, str, Path]], profile: DeviceProfile, *, runs: int = 200,
                warmup: int = 20, repeats: int = 3, extra_rounds: int = EXTRA_ROUNDS, progress: bool | None = None,
                gate: bool = True, gate_log: list[dict[str, Any]] | None = None, **runner_kw: Any) -> list[Measurement]:
    """Measure every (spec, runtime, precision, file) ``repeats`` times, interleaved; keep the fastest median.

    Then, while some model's two fastest rounds disagree by more than ``AGREE_PCT``, another
    interleaved round of those models only, at most ``extra_rounds`` more. With ``gate``, the
    first file is also the sentinel (``rounds.py``): rounds measured in a slow machine state do
    not count. The peak memory kept is the smallest of the rounds (a co-running process cannot
    shrink it). ``gate_log`` receives the gate's summary."""
    from tqdm import tqdm

    if not items:
        return []
    results: dict[int, list[tuple[float, float, float, float | None]]] = {i: [] for i in range(len(items))}

    def one(i: int) -> float:
        results[i].append(measure_file(items[i][3], profile, runs, warmup, **runner_kw))
        bar.update(1)
        return round(results[i][-1][0], 6)

    def grow(r: int, count: int) -> None:
        if r >= repeats:
            bar.total += count
            bar.refresh()

    sentinel = (lambda: measure_file(items[0][3], profile, runs, warmup, **runner_kw)[0]) if gate else None
    disable = (not sys.stderr.isatty()) if progress is None else not progress
    with tqdm(total=len(items) * repeats, desc="measure", unit="run", file=sys.stderr, disable=disable) as bar:
        st = run_rounds(len(items), one, repeats=repeats, extra_rounds=extra_rounds, sentinel=sentinel, on_round=grow)
    if gate_log is not None:
        gate_log.append(st.summary())
    out = []
    for i, (spec, rt, prec, _) in enumerate(items):
        p50, p90, std, _mem = results[i][st.best(i)]
        mems = [m[3] for m in results[i] if m[3] is not None]
        out.append(Measurement(rt, prec, spec, p50, p90, std, runs, now_iso(), min(mems) if mems else None,
                               tuple(st.figures[i])))
    return out


def kernel_capable(runtime: str) -> bool:
    """Whether the runtime's kernels can be timed apart here (ONNX Runtime's node profiler)."""
    return get_runtime(runtime).artifact_format == "onnx"


def calibrate_kernels(items: list[tuple[StudentSpec, str, str, Path]], profile: DeviceProfile, *, runs: int = 100,
                      warmup: int = 20, repeats: int = 3, extra_rounds: int = EXTRA_ROUNDS, gate: bool = True,
                      **runner_kw: Any) -> dict[str, dict[str, Any]]:
    """Profile every ONNX probe ``repeats`` times, interleaved; fit one kernel predictor per runtime key.

    Of each model's rounds the one with the fastest ``Run()`` is kept: all its kernels were
    timed while nothing else held the core. With ``gate``, rounds profiled while the sentinel
    (the first probe, timed unprofiled) ran slow do not count (``rounds.py``); each key's fit
    carries what the gate saw under ``gate``."""
    from edgecompress.bench.api import make_runner
    from edgecompress.cost.calibration import runtime_key
    from edgecompress.cost.kernels import fit_kernels, graph_nodes, profile_on_device, samples_from_profile
    from edgecompress.cost.predictor import prior_coefficients

    todo = [it for it in items if kernel_capable(it[1])]
    if not todo:
        return {}
    runner = make_runner(profile.connection.runner, profile, **runner_kw)
    cpus = mask_to_cpus(profile.runtime.cpu_mask) if profile.runtime.cpu_mask else local_cpus(runner, profile.runtime.threads)
    payloads: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(todo))}
    state: dict[str, Any] = {}
    sentinel = (lambda: measure_file(todo[0][3], profile, runs, warmup, **runner_kw)[0]) if gate else None
    with runner, tempfile.TemporaryDirectory(prefix="edgecompress-kernels-") as tmp:

        def one(i: int) -> float:
            nonlocal state
            payload, opt = profile_on_device(runner, todo[i][3], Path(tmp), threads=profile.runtime.threads, cpus=cpus,
                                             warmup=warmup, runs=runs)
            payload["graph"] = graph_nodes(opt)
            payloads[i].append(payload)
            state = {k: payload.get(k) for k in ("governor", "affinity", "cpu_model", "state_before", "state_after")}
            return float(payload["run_us"])

        st = run_rounds(len(todo), one, repeats=repeats, extra_rounds=extra_rounds, sentinel=sentinel)
    seen = st.summary()
    best = {i: payloads[i][st.best(i)] for i in payloads}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted({runtime_key(rt, p) for _, rt, p, _ in todo}):
        samples, outside = [], []
        for i, (spec, rt, p, _) in enumerate(todo):
            if runtime_key(rt, p) == key:
                s, o = samples_from_profile(best[i], best[i]["graph"], f"{spec.family} {spec.label}")
                samples += s
                outside.append(o)
        info = fit_kernels(samples, outside, prior_coefficients(profile.priors, key.split(":")[1]))
        out[key] = {**info, "models": len(outside), "precision": key.split(":")[1], "fitted_at": now_iso(), "hygiene": state,
                    "gate": seen, "kernel_samples": [s.to_dict() for s in samples]}
    return out


def local_cpus(runner: Any, threads: int) -> list[int]:
    """The CPUs the benchmark runner would pin to (the local runner's policy); [] elsewhere."""
    from edgecompress.bench.runner import RunRequest

    pick = getattr(runner, "cpus_for", None)
    return list(pick(RunRequest(Path("."), threads))) if pick is not None else []


def export_all(specs: list[StudentSpec], keys: Sequence[tuple[str, str]], work: Path,
               progress: bool | None = None) -> Iterator[tuple[StudentSpec, str, str, Path]]:
    from tqdm import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    for i, spec in enumerate(tqdm(specs, desc="export", unit="model", file=sys.stderr, disable=disable)):
        try:
            files = export_spec(spec, keys, work / f"m{i:03d}", seed=i)
        except EdgeCompressError as exc:
            raise CalibrationError(f"probe {spec.family} {spec.extra.get('label', spec.arch)}: export failed: {exc}") from None
        for (rt, prec), path in files.items():
            yield spec, rt, prec, path


def calibrate(profile: DeviceProfile, keys: Sequence[tuple[str, str]], *, probes: int = 20,
              input_shape: tuple[int, int, int] = (3, 32, 32), runs: int = 200, warmup: int = 20, repeats: int = 3,
              extra_rounds: int = EXTRA_ROUNDS, progress: bool | None = None, path: Path | None = None,
              kernels: bool = True, gate: bool = True, **runner_kw: Any) -> tuple[Calibration, dict[str, Any]]:
    """Measure ``probes`` new probe models (their kernels too, where the runtime allows), refit, save."""
    if probes < 1:
        raise CalibrationError(f"--probes {probes} is not allowed (must be >= 1)")
    path = path or profile.calibration_path
    cal = Calibration.load(path, profile.name)
    cal.hardware = profile.hardware.soc
    # Continue the probe sequence where earlier runs stopped, so re-runs add new points.
    start = sum(1 for m in cal.measurements if "probe" in m.spec.extra) // max(1, len(keys))
    specs = probe_specs(start + probes, input_shape)[start:]
    with tempfile.TemporaryDirectory(prefix="edgecompress-calibrate-") as tmp:
        items = list(export_all(specs, keys, Path(tmp), progress))
        t0 = time.monotonic()
        gates: dict[str, Any] = {}  # what the machine-state gate saw in each stage (rounds.py)
        gate_m: list[dict[str, Any]] = []
        if kernels and any(kernel_capable(r) for r, _ in keys):
            # Kernel samples of earlier runs are kept: the new probes' samples are added to them.
            for key, info in calibrate_kernels(items, profile, runs=runs, warmup=warmup, repeats=repeats,
                                               extra_rounds=extra_rounds, gate=gate, **runner_kw).items():
                gates["kernel profiling"] = info["gate"]
                old = [KernelSample.from_dict(d) for d in cal.kernels.get(key, {}).get("kernel_samples", [])]
                cal.kernels[key] = merge_kernel_fit(info, old, profile)
        t_kernels = time.monotonic() - t0
        cal.measurements += measure_all(items, profile, runs=runs, warmup=warmup, repeats=repeats,
                                        extra_rounds=extra_rounds, progress=progress, gate=gate, gate_log=gate_m,
                                        **runner_kw)
        device_s = time.monotonic() - t0
    if gate_m:
        gates["whole models"] = gate_m[0]
    from edgecompress.cost.calibration import runtime_key

    acc = cal.refit(profile, [runtime_key(r, p) for r, p in keys])
    cal.meta = {**cal.meta, "last_run": {"device_s": round(device_s, 1), "kernel_device_s": round(t_kernels, 1),
                                         "probes": len(specs), "keys": [runtime_key(r, p) for r, p in keys], "at": now_iso(),
                                         "gate": gates}}
    cal.save(path)
    return cal, {"path": str(path), "new_probes": len(specs), "accuracy": acc, "device_s": device_s,
                 "kernel_samples": {k: v.get("samples", 0) for k, v in cal.kernels.items()}, "gate": gates}


def merge_kernel_fit(info: dict[str, Any], old: list[KernelSample], profile: DeviceProfile) -> dict[str, Any]:
    """Refit a kernel predictor on this run's samples plus an earlier run's (same per-inference term)."""
    from edgecompress.cost.kernels import fit_kernels
    from edgecompress.cost.predictor import prior_coefficients

    if not old:
        return info
    samples = old + [KernelSample.from_dict(d) for d in info["kernel_samples"]]
    precision = str(info.get("precision", "fp32"))
    refit = fit_kernels(samples, [info["coef"]["const"] * 1e3], prior_coefficients(profile.priors, precision))
    return {**info, **refit, "kernel_samples": [s.to_dict() for s in samples]}
