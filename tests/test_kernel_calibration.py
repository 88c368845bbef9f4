"""Kernel-level calibration: profiled ORT nodes -> kernel samples -> per-type fit; conformal
intervals; schema-1 calibration files; the interval in selection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecompress.cost.calibrate import calibrate_kernels, export_spec, probe_specs
from edgecompress.cost.calibration import Calibration, LatencyPredictor, Measurement
from edgecompress.cost.estimate import spec_cost
from edgecompress.cost.kernels import KernelSample, fit_kernels, samples_from_profile
from edgecompress.cost.predictor import FEATURES, conformal_halfwidth, fit, predict, prior_coefficients
from edgecompress.errors import CalibrationError
from edgecompress.profiles import builtin_profiles_dir, load_profile_file
from edgecompress.select import run_selection

FIXTURE = Path(__file__).parent / "fixtures" / "calibration_schema1.json"


@pytest.fixture()
def host(tmp_path: Path):
    dst = tmp_path / "host.toml"
    shutil.copy(builtin_profiles_dir() / "host.toml", dst)
    return load_profile_file(dst)


def _node(name: str, op: str, inputs: list[list[int]], outputs: list[list[int]], us: float) -> dict:
    return {"name": name, "op": op, "inputs": [{"float": s} for s in inputs], "outputs": [{"float": s} for s in outputs], "us": us}


def test_profiled_nodes_become_kernel_samples() -> None:
    nodes = [
        _node("q_in", "QuantizeLinear", [[1, 8, 8, 8], [], []], [[1, 8, 8, 8]], 2.0),  # glue: charged to the next kernel
        _node("c1", "Conv", [[1, 8, 8, 8], [16, 8, 3, 3], [16]], [[1, 16, 8, 8]], 10.0),
        _node("c2", "Conv", [[1, 16, 8, 8], [16, 16, 1, 1], [16], [1, 16, 8, 8]], [[1, 16, 8, 8]], 5.0),  # fused residual add
        _node("dw", "QLinearConv", [[1, 8, 8, 16], [], [], [16], [16], [], [], [16]], [[1, 8, 8, 16]], 4.0),
        _node("gap", "GlobalAveragePool", [[1, 16, 8, 8]], [[1, 16, 1, 1]], 1.0),
        _node("fc", "Gemm", [[1, 16], [10]], [[1, 10]], 3.0),
        _node("dq", "DequantizeLinear", [[1, 10], [], []], [[1, 10]], 1.0),  # trailing glue: to the last kernel
    ]
    # The profiler omits prepacked int8 weights: the optimized graph gives their shape and groups.
    graph = {"dw": ("QLinearConv", {"group": 16}, [None, None, None, (16, 1, 3, 3)])}
    samples, outside = samples_from_profile({"nodes": nodes, "run_us": 30.0}, graph)
    assert [s.kernel for s in samples] == ["conv", "pw", "dw", "elem", "fc"]
    assert samples[0].us == 12.0 and samples[-1].us == 4.0 and outside == 4.0
    assert samples[0].features["conv_macs"] == 16 * 64 * 8 * 9
    assert samples[1].features["add_n"] == 1 and samples[1].features["add_mem"] == 3 * 16 * 64
    assert samples[2].features["dw_macs"] == 16 * 64 * 9
    assert samples[4].features["fc_macs"] == 160


def test_kernel_fit_recovers_per_type_rates(host) -> None:
    rng = np.random.default_rng(0)
    prior = prior_coefficients(host.priors, "fp32")
    true = {k: v * rng.uniform(0.3, 3.0) for k, v in prior.items()}
    samples = []
    for t in ("conv", "pw", "dw", "fc", "elem", "add"):
        for _ in range(40):
            f = {f"{t}_macs": float(rng.integers(1e4, 5e6)), f"{t}_mem": float(rng.integers(1e3, 1e5)), f"{t}_n": 1.0}
            samples.append(KernelSample(t, f, predict({**true, "const": 0.0}, f) * 1e3))
    info = fit_kernels(samples, [50.0, 60.0, 70.0], prior)
    assert info["sample_within_10pct"] > 0.99 and info["samples"] == 240
    assert info["coef"]["const"] == pytest.approx(0.06)
    for t in ("conv", "pw", "dw"):
        assert info["coef"][f"{t}_macs"] == pytest.approx(true[f"{t}_macs"], rel=0.05)
    with pytest.raises(CalibrationError, match="no kernel samples"):
        fit_kernels([], [], prior)


def test_conformal_halfwidth() -> None:
    r = np.linspace(-0.2, 0.2, 19)
    q = conformal_halfwidth(r, 0.9)  # ceil(20 * 0.9) = 18th smallest |r|
    assert q == pytest.approx(sorted(abs(r))[17])
    assert conformal_halfwidth([0.1, 0.2], 0.9) == float("inf")  # too few to bound


def test_schema1_calibration_still_loads_and_predicts_the_same(host) -> None:
    old = json.loads(FIXTURE.read_text())
    cal = Calibration.load(FIXTURE, "host")
    pred = LatencyPredictor(host, cal)
    for m in cal.measurements:
        cost = spec_cost(m.spec)
        coef = old["fits"]["onnxruntime-cpu:fp32"]["coef"]
        # Before the add type, residual adds were elementwise kernels.
        elem = {q: cost.features[f"elem_{q}"] + cost.features[f"add_{q}"] for q in ("macs", "mem", "n")}
        # ... and there was no generic-path term (its feature is zero outside the "sym" layout).
        before = coef["const"] + sum(coef[k] * cost.features[k] for k in FEATURES
                                     if not k.startswith(("elem", "add", "const", "gen_")))
        before += sum(coef[f"elem_{q}"] * v for q, v in elem.items())
        assert pred.predict(cost.features, "onnxruntime-cpu", "fp32") == pytest.approx(before)
    assert pred.interval_halfwidth("onnxruntime-cpu", "fp32") is None  # old files carry no interval


def test_unknown_schema_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({**json.loads(FIXTURE.read_text()), "schema_version": 9}))
    with pytest.raises(CalibrationError, match=r"schema_version 9 is not supported \(allowed: 1, 2\)"):
        Calibration.load(bad, "host")


def _calibrated(host, bias: float) -> Calibration:
    """A calibration whose probes are measured at prior x (1 + bias x alternating sign)."""
    prior = prior_coefficients(host.priors, "fp32")
    specs = probe_specs(20, (3, 32, 32))
    ms = [Measurement("onnxruntime-cpu", "fp32", s, predict(prior, spec_cost(s).features) * (1 + bias * (-1) ** i), 0.0, 0.0, 10)
          for i, s in enumerate(specs)]
    cal = Calibration("host", host.hardware.soc, ms)
    cal.refit(host)
    return cal


def test_selection_checks_the_interval_upper_end(host) -> None:
    cal = _calibrated(host, 0.08)
    pred = LatencyPredictor(host, cal)
    q = pred.interval_halfwidth("onnxruntime-cpu", "fp32")
    assert q is not None and 0.0 < q < 0.5
    sel = run_selection(host, (3, 32, 32), 10, latency_ms=0.5, memory_mb=1e6, size_mb=1e6, predictor=pred)
    c = sel.choice
    assert c.latency_upper_ms == pytest.approx(c.latency_ms * (1 + q)) and c.latency_upper_ms <= 0.5
    assert "upper end of the 90% interval" in sel.latency_source
    # A candidate whose point prediction fits but whose upper end does not is over budget.
    assert any(x.latency_ms <= 0.5 < x.latency_upper_ms and "latency" in x.over for x in sel.candidates)


def test_kernel_prior_drives_the_whole_model_fit(host) -> None:
    cal = _calibrated(host, 0.0)
    cal.kernels["onnxruntime-cpu:fp32"] = {"coef": {k: 0.0 for k in FEATURES}}
    prior = cal.prior(host, "onnxruntime-cpu:fp32", "fp32")
    base = prior_coefficients(host.priors, "fp32")
    assert all(prior[k] == pytest.approx(0.05 * base[k]) for k in FEATURES)  # floored, never 0


def test_leave_one_out_never_sees_the_left_out_probe_through_the_kernel_prior(host) -> None:
    """The kernel prior is tied to the whole probes; each fold ties it without its left-out probe.
    Moving one probe's measurement must leave that probe's own leave-one-out prediction alone."""
    cal = _calibrated(host, 0.05)
    key = "onnxruntime-cpu:fp32"
    base = prior_coefficients(host.priors, "fp32")
    cal.kernels[key] = {"coef": {k: v * 0.7 for k, v in base.items()}}
    feats = [spec_cost(m.spec).features for m in cal.measurements]
    measured = [m.latency_ms for m in cal.measurements]
    moved = list(measured)
    moved[3] *= 5.0
    loo = [fit(feats, y, cal._prior_of(host, key, "fp32", feats, y, 1, "kernels")).loo_predicted for y in (measured, moved)]
    assert loo[0][3] == pytest.approx(loo[1][3], rel=1e-9)
    assert any(abs(a - b) > 1e-9 * abs(a) for a, b in zip(loo[0], loo[1], strict=True))  # the others do see it


def test_refit_chooses_the_prior_that_predicts_left_out_probes_best(host) -> None:
    """A device unlike the profile's priors: a kernel fit that matches it is chosen over the
    priors; a kernel fit that is wrong loses to them. Without kernels, and for the benchmark's
    baseline, the priors."""
    rng = np.random.default_rng(3)
    base = prior_coefficients(host.priors, "fp32")
    true = {k: v * rng.uniform(0.3, 3.0) for k, v in base.items()}
    specs = probe_specs(24, (3, 32, 32))
    ms = [Measurement("onnxruntime-cpu", "fp32", s, predict(true, spec_cost(s).features) * (1 + 0.02 * (-1) ** i), 0.0, 0.0, 10)
          for i, s in enumerate(specs)]
    cal = Calibration("host", host.hardware.soc, ms)
    key = "onnxruntime-cpu:fp32"
    cal.refit(host)
    assert cal.fits[key]["prior"] == "profile priors"  # no kernels measured
    cal.kernels[key] = {"coef": dict(true)}
    cal.refit(host)
    assert cal.fits[key]["prior"] == "kernels" and cal.fits[key]["loo"]["within_10pct"] == 1.0
    cal.refit(host, prior="profile priors")  # the baseline the benchmark compares with
    assert cal.fits[key]["prior"] == "profile priors"
    # A device that is its priors, and a kernel fit off by factors of 0.1-10: the priors win.
    cal = _calibrated(host, 0.02)
    cal.kernels[key] = {"coef": {k: v * rng.uniform(0.1, 10.0) for k, v in base.items()}}
    cal.refit(host)
    assert cal.fits[key]["prior"] == "profile priors"
    cal.refit(host, prior="kernels")  # forced, as the benchmark's comparison does
    assert cal.fits[key]["prior"] == "kernels"
    with pytest.raises(ValueError, match="prior"):
        cal.refit(host, prior="kernel")


def test_real_ort_kernel_calibration(host, tmp_path: Path) -> None:
    """Real ONNX Runtime node profiling of a tiny student, fp32 and QDQ int8, through the local runner."""
    spec = probe_specs(1, (3, 16, 16))[0]
    keys = [("onnxruntime-cpu", "fp32"), ("onnxruntime-cpu", "int8")]
    files = export_spec(spec, keys, tmp_path / "m")
    items = [(spec, rt, p, files[(rt, p)]) for rt, p in keys]
    out = calibrate_kernels(items, host, runs=10, warmup=2, repeats=1)
    assert set(out) == {"onnxruntime-cpu:fp32", "onnxruntime-cpu:int8"}
    for info in out.values():
        kinds = {s["kernel"] for s in info["kernel_samples"]}
        assert {"conv", "pw", "dw", "fc"} <= kinds and info["samples"] == len(info["kernel_samples"])
        assert info["coef"]["const"] > 0 and info["models"] == 1
        assert "governor" in info["hygiene"] and info["hygiene"]["affinity"]
        # The kernel fit alone predicts the profiled model's kernels within a factor of two.
        total = sum(s["us"] for s in info["kernel_samples"]) / 1e3
        assert 0.5 < predict({**info["coef"], "const": 0.0}, spec_cost(spec).features) / total < 2.0
