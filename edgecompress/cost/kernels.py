"""Kernel-level calibration: time every kernel a runtime runs, fit one predictor per kernel type.

nn-Meter's lesson is that a model's latency is the sum of the latencies of the kernels the
runtime actually runs (after its own fusion), plus a per-inference term. ONNX Runtime can
time those kernels apart: its per-node profiler reports each node of the *optimized* graph
(fused Conv+Add+ReLU, NCHWc convs, QLinearConv, QLinearAdd ...). ``ort_kernel_probe.py`` runs on
the device (pushed and run through the profile's runner, so local and ssh boards take the
same path) and returns per-node medians; this module maps each node to the cost model's
kernel types and features and fits the per-type coefficients on those samples:

- a conv / pw / dw / fc / add / elem node is one sample of its type, with the same features
  the cost model gives that kernel (MACs, elements moved, count); a conv into which ORT fused
  the residual add also carries the add's features, so the add's marginal cost is learned
  where the runtime hides it;
- glue nodes (Quantize/DequantizeLinear, Transpose, NCHWc Reorder, Flatten) are charged to the
  kernel they feed, as they exist because of it;
- the fit minimizes absolute error over the kernels (a model's latency is their sum, which the
  large kernels dominate; a 3 us kernel timed to the profiler's 1 us resolution should not steer
  it);
- the per-inference term is fixed by the whole probes (``Calibration.prior``): the profiler's
  own ``Run()`` minus its nodes is recorded, but it includes the profiler's bookkeeping per node.

The predictor per type is linear in (MACs, elements, count): a roofline sum, one throughput,
one bandwidth and one dispatch cost per kernel type. It was chosen over trees because it
extrapolates sanely to the widths the probes did not reach, it is what the whole-model fit
(``predictor.py``) is expressed in (so the kernel fit is the prior that fit pulls towards),
and with hundreds of samples per model set its few coefficients are tightly determined.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgecompress.cost.predictor import FEATURES, _solve, feature_vector
from edgecompress.errors import CalibrationError

PROBE_SCRIPT = Path(__file__).with_name("ort_kernel_probe.py")
MARKER = "@@edgecompress "
_CONV = {"Conv", "FusedConv", "QLinearConv", "NhwcFusedConv", "NhwcConv", "ConvInteger"}
_FC = {"Gemm", "QGemm", "MatMul", "FusedMatMul", "FusedGemm", "MatMulInteger", "DynamicQuantizeMatMul"}
_ADD = {"Add", "QLinearAdd", "Sum"}
_ELEM = {"GlobalAveragePool", "QLinearGlobalAveragePool", "AveragePool", "QLinearAveragePool", "MaxPool", "Mul",
         "QLinearMul", "Sigmoid", "QLinearSigmoid", "HardSigmoid", "HardSwish", "Relu", "Clip", "BatchNormalization",
         "Concat", "QLinearConcat", "LeakyRelu"}
KERNEL_LAMBDA = 1e-3  # a light pull to the priors, only for coefficients the samples never exercise


@dataclasses.dataclass(frozen=True)
class KernelSample:
    """One timed kernel: its type, the cost model's features for it, and its median time."""

    kernel: str
    features: dict[str, float]
    us: float
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "f": {k: v for k, v in self.features.items() if v}, "us": round(self.us, 3),
                "model": self.model}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelSample:
        return cls(str(d["kernel"]), {str(k): float(v) for k, v in d["f"].items()}, float(d["us"]), str(d.get("model", "")))


def _numel(shape: list[int]) -> int:
    return math.prod(int(s) for s in shape) if shape else 1


def _shapes(typed: list[dict[str, list[int]]]) -> list[list[int]]:
    """``[{"float": [1, 3, 32, 32]}, ...]`` -> ``[[1, 3, 32, 32], ...]``."""
    return [list(next(iter(t.values()))) if t else [] for t in typed]


def graph_nodes(optimized: Path) -> dict[str, tuple[str, dict[str, Any], list[tuple[int, ...] | None]]]:
    """Optimized-graph node name -> (op, attributes, initializer shape per input or None)."""
    import onnx

    m = onnx.load(str(optimized), load_external_data=False)
    inits = {i.name: tuple(int(d) for d in i.dims) for i in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute if a.name in ("group", "kernel_shape")}
        out[n.name] = (n.op_type, attrs, [inits.get(i) for i in n.input])
    return out


def _conv_features(node: dict[str, Any], graph: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
    shapes = _shapes(node["inputs"])
    out = _numel(_shapes(node["outputs"])[0])
    op, attrs, inits = graph.get(node["name"], (node["op"], {}, []))
    w_index = 3 if node["op"] == "QLinearConv" else 1
    weight = inits[w_index] if len(inits) > w_index and inits[w_index] else None
    if weight is None and node["op"] != "QLinearConv" and len(shapes) > 1 and len(shapes[1]) == 4:
        weight = tuple(shapes[1])  # the profiler reports fp32 conv weights, not prepacked int8 ones
    if weight is None or len(weight) != 4:
        return None
    group = int(attrs.get("group", 1))
    k = weight[2] * weight[3]
    kernel = "dw" if group > 1 else ("pw" if k == 1 else "conv")
    f = {f"{kernel}_macs": float(out * weight[1] * k), f"{kernel}_n": 1.0,
         f"{kernel}_mem": float(_numel(shapes[0]) + out + _numel(list(weight)))}
    # A residual add fused into the conv (NCHWc "Sum" / FusedConv "Z"): an activation-shaped
    # extra input. It carries the add's features so the add's marginal cost is learned here.
    if node["op"] != "QLinearConv" and any(_numel(s) == out and len(s) == 4 for s in shapes[3:]):
        f.update({"add_macs": float(out), "add_mem": float(3 * out), "add_n": 1.0})
    return kernel, f


def classify(node: dict[str, Any], graph: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
    """(kernel type, features) of one profiled node, or None for glue (charged to the next kernel)."""
    op = node["op"]
    if op in _CONV:
        return _conv_features(node, graph)
    outs = _shapes(node["outputs"])
    out = _numel(outs[0]) if outs else 0
    acts = [s for s in _shapes(node["inputs"]) if len(s) >= 2]  # activations, not scales / zero points
    if op in _FC and acts:
        cin = acts[0][-1]
        return "fc", {"fc_macs": float(cin * out), "fc_mem": float(cin + out + cin * out), "fc_n": 1.0}
    if op in _ADD:
        return "add", {"add_macs": float(out), "add_mem": float(3 * out), "add_n": 1.0}
    if op in _ELEM:
        first = _numel(acts[0]) if acts else out
        return "elem", {"elem_macs": float(max(first, out)), "elem_mem": float(sum(_numel(s) for s in acts) + out),
                        "elem_n": 1.0}
    return None


def samples_from_profile(payload: dict[str, Any], graph: dict[str, Any], model: str = "") -> tuple[list[KernelSample], float]:
    """Kernel samples of one profiled model, and its per-inference time outside the nodes (us)."""
    out: list[KernelSample] = []
    pending = 0.0
    for node in payload["nodes"]:
        if node.get("us") is None:
            continue
        c = classify(node, graph)
        if c is None:
            pending += float(node["us"])
            continue
        out.append(KernelSample(c[0], c[1], float(node["us"]) + pending, model))
        pending = 0.0
    if out and pending:  # glue after the last kernel (the output's DequantizeLinear)
        last = out[-1]
        out[-1] = dataclasses.replace(last, us=last.us + pending)
    outside = float(payload["run_us"]) - sum(float(n["us"]) for n in payload["nodes"] if n.get("us") is not None)
    return out, outside


def fit_kernels(samples: list[KernelSample], outside_us: list[float], prior: dict[str, float]) -> dict[str, Any]:
    """Per-kernel-type coefficients (ms per unit) from kernel samples; const: the profiled
    ``Run()`` outside the nodes, an upper bound the whole-model stage replaces."""
    if not samples:
        raise CalibrationError("kernel calibration: no kernel samples were measured")
    x = np.stack([feature_vector(s.features) for s in samples])
    x[:, FEATURES.index("const")] = 0.0  # a kernel sample carries no per-inference term
    y = np.array([s.us / 1e3 for s in samples])
    p = np.array([prior[k] for k in FEATURES])
    w = _solve(x, y, p, KERNEL_LAMBDA, relative=False)
    coef = dict(zip(FEATURES, map(float, w), strict=True))
    # Run() minus its nodes: session dispatch, input / output copies, and the profiler's own
    # per-node bookkeeping. Floored: never negative.
    coef["const"] = max(statistics.median(outside_us) / 1e3 if outside_us else prior["const"], 1e-4)
    rel = (x @ w - y) / y
    counts = {t: sum(1 for s in samples if s.kernel == t) for t in sorted({s.kernel for s in samples})}
    return {"coef": coef, "samples": len(samples), "per_type": counts, "lambda": KERNEL_LAMBDA,
            "sample_rmspe": float(np.sqrt(np.mean(rel**2)) * 100), "sample_within_10pct": float(np.mean(np.abs(rel) <= 0.1))}


def parse_events(stdout: str) -> dict[str, Any]:
    """The probe's ``kernels`` event; its ``error`` event raised as a CalibrationError."""
    for line in stdout.splitlines():
        if not line.startswith(MARKER):
            continue
        ev = json.loads(line[len(MARKER):])
        if ev.get("event") == "error":
            raise CalibrationError(f"kernel profiling: {ev.get('message')}")
        if ev.get("event") == "kernels":
            return dict(ev)
    raise CalibrationError("kernel profiling: the device printed no result (is onnxruntime installed there?)")


def profile_on_device(runner: Any, model: Path, local_dir: Path, *, threads: int, cpus: list[int], warmup: int,
                      runs: int) -> tuple[dict[str, Any], Path]:
    """Push the probe and ``model`` through ``runner``, profile, pull the optimized graph back."""
    from edgecompress.bench.runner import DEVICE_RUNNER

    python = getattr(runner, "python", None)
    if python is None:
        raise CalibrationError(f"{runner.label}: kernel profiling runs a python script on the device; this runner "
                               "has none (use --no-kernels: whole-model probes only)")
    runner.check()
    try:
        helper = runner.push(DEVICE_RUNNER, DEVICE_RUNNER.name)
        script = runner.push(PROBE_SCRIPT, PROBE_SCRIPT.name)
        remote = runner.push(model, model.name)
        opt = str(PurePosixPath(remote).parent / f"{model.stem}.kopt.onnx")
        argv = [python, script, remote, "--optimized", opt, "--threads", str(threads), "--warmup", str(warmup),
                "--runs", str(runs), "--cpus", ",".join(map(str, cpus)), "--helpers", str(PurePosixPath(helper).parent)]
        done = runner.run(argv, timeout_s=600.0)
        if done.timed_out:
            raise CalibrationError(f"{runner.label}: kernel profiling of {model.name} timed out")
        payload = parse_events(done.stdout)
        local = runner.pull(opt, local_dir / f"{model.stem}.kopt.onnx")
    finally:
        runner.cleanup()
    return payload, Path(local)
