"""Latency predictor fit (synthetic and real measurements) and `edgecompress calibrate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.cost.calibrate import probe_specs, random_students
from edgecompress.cost.calibration import Calibration, LatencyPredictor, Measurement, parse_runtime_key
from edgecompress.cost.estimate import layout_key, spec_cost
from edgecompress.cost.predictor import Accuracy, fit, predict, prior_coefficients
from edgecompress.cost.rounds import run_rounds, unsettled
from edgecompress.errors import CalibrationError
from edgecompress.profiles import builtin_profiles_dir, load_profile_file


@pytest.fixture()
def host(tmp_path: Path):
    dst = tmp_path / "host.toml"
    shutil.copy(builtin_profiles_dir() / "host.toml", dst)
    return load_profile_file(dst)


def _synthetic(profile, n_probe: int, n_held: int, noise: float, seed: int = 0):
    """A fake device whose true coefficients are the priors times factors in [0.3, 3]."""
    rng = np.random.default_rng(seed)
    prior = prior_coefficients(profile.priors, "fp32")
    true = {k: v * rng.uniform(0.3, 3.0) for k, v in prior.items()}
    probes = [spec_cost(s).features for s in probe_specs(n_probe, (3, 32, 32))]
    held = [spec_cost(s).features for s in random_students(n_held, (3, 32, 32), seed=5)]
    y = lambda fs: [predict(true, f) * rng.normal(1.0, noise) for f in fs]  # noqa: E731
    return prior, probes, y(probes), held, y(held)


def test_probe_design_covers_every_width_range_and_extends() -> None:
    """Each (family, depth) gets probes across the whole log-width range, so no held-out
    student is an extrapolation; and a longer design starts with the shorter one (calibrate
    re-runs add probes). The design before left ResNet d3 probes in widths 0.29-0.46."""
    import math
    from collections import defaultdict

    from edgecompress.students.families import WIDTHS

    lo, hi = math.log(WIDTHS[0]), math.log(WIDTHS[-1])
    probes = probe_specs(30, (3, 32, 32))
    by_combo: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in probes:
        by_combo[(s.family, s.arch)].append((math.log(s.width_mult) - lo) / (hi - lo))
    assert len(by_combo) == 6
    for combo, us in by_combo.items():
        u = sorted(us)
        # every point of [0, 1] lies within 0.25 of a probe of this combination
        gaps = [u[0], 1 - u[-1]] + [(b - a) / 2 for a, b in zip(u, u[1:], strict=False)]
        assert max(gaps) <= 0.25, (combo, u)
    short = probe_specs(12, (3, 32, 32))
    assert [(s.arch, s.width_mult) for s in short] == [(s.arch, s.width_mult) for s in probes[:12]]


def test_fit_recovers_a_synthetic_device(host) -> None:
    prior, probes, yp, held, yh = _synthetic(host, 20, 40, noise=0.02)
    f = fit(probes, yp, prior)
    acc = Accuracy.of([predict(f.coef, x) for x in held], yh)
    assert acc.within_10pct >= 0.95 and acc.rmspe < 6
    assert f.loo.n == 20 and f.loo.within_10pct >= 0.9
    # The priors alone are far off for this device: the fit is what made it accurate.
    assert Accuracy.of([predict(prior, x) for x in held], yh).within_10pct < 0.5
    assert all(v >= 0 for v in f.coef.values())


def test_fit_without_measurements_is_the_prior(host) -> None:
    prior = prior_coefficients(host.priors, "int8")
    assert fit([], [], prior).coef == prior


def test_calibration_file_round_trip_and_predictor(host, tmp_path: Path) -> None:
    prior, probes, yp, _, _ = _synthetic(host, 8, 0, noise=0.01)
    specs = probe_specs(8, (3, 32, 32))
    cal = Calibration("host", measurements=[Measurement("onnxruntime-cpu", "fp32", s, y, y * 1.1, 0.01, 100)
                                            for s, y in zip(specs, yp, strict=True)])
    acc = cal.refit(host)
    assert acc["onnxruntime-cpu:fp32"].n == 8
    path = tmp_path / "host.calibration.json"
    cal.save(path)
    again = Calibration.load(path, "host")
    assert len(again.measurements) == 8 and again.fits.keys() == cal.fits.keys()
    pred = LatencyPredictor(host, again)
    coef, source = pred.coefficients("onnxruntime-cpu", "fp32")
    assert source == "calibrated (n=8)"
    # Uncalibrated precisions of the same runtime are not trusted to undercut the calibrated one.
    assert pred.deploy_precisions() == ["fp32"]
    assert pred.coefficients("onnxruntime-cpu", "int8")[1] == "priors"


@pytest.mark.parametrize(("block", "rule", "runtime", "precision"), [
    (16, "out", "tflite-xnnpack", "fp32"), (16, "io", "tflite-xnnpack", "fp32"), (16, "sym", "onnxruntime-cpu", "int8")])
def test_refit_finds_how_the_runtime_pads_channels(host, tmp_path: Path, block: int, rule: str, runtime: str,
                                                   precision: str) -> None:
    """A device whose convs cost as if padded to ``block`` channels by ``rule`` (XNNPACK pads
    output channels only, ONNX Runtime's NCHWc inputs too, its int8 convs outside MLAS's
    symmetric kernels run a slower generic path): leave-one-out over the probes picks that
    layout, the fit predicts held-out students with it, and the choice survives the file."""
    rng = np.random.default_rng(3)
    true = prior_coefficients(host.priors, precision)
    for t in ("conv", "pw", "dw"):
        true[f"{t}_macs"] *= 3.0  # compute bound: the padding decides the latency
    true["gen_macs"] = 4.0 * true["conv_macs"]
    lay = layout_key(block, rule)
    specs = probe_specs(30, (3, 32, 32))
    cal = Calibration("host", measurements=[
        Measurement(runtime, precision, s, predict(true, spec_cost(s).features, lay) * rng.normal(1.0, 0.01),
                    0.0, 0.0, 100) for s in specs])
    cal.refit(host)
    f = cal.fits[f"{runtime}:{precision}"]
    assert (f["channel_block"], f["padding"]) == (block, rule)
    held = random_students(20, (3, 32, 32), seed=8)
    pred = LatencyPredictor(host, cal)
    err = [pred.predict(spec_cost(s).features, runtime, precision) / predict(true, spec_cost(s).features, lay) - 1
           for s in held]
    assert max(abs(e) for e in err) < 0.05
    path = tmp_path / "cal.json"
    cal.save(path)
    again = LatencyPredictor(host, Calibration.load(path, "host"))
    assert again.predict(spec_cost(held[0]).features, runtime, precision) == pytest.approx(
        pred.predict(spec_cost(held[0]).features, runtime, precision))


def test_runtime_specific_rules_are_offered_only_where_declared() -> None:
    """ONNX Runtime int8 may choose MLAS's "sym" conv split; LiteRT and ORT fp32 may not (their
    kernels follow other rules), so noise cannot pick it there."""
    from edgecompress.cost.calibration import padding_choices

    assert {r for _, r in padding_choices("onnxruntime-cpu:int8")} == {"none", "io", "out", "sym"}
    for key in ("onnxruntime-cpu:fp32", "tflite-xnnpack:int8", "tflite-xnnpack:fp32"):
        assert {r for _, r in padding_choices(key)} == {"none", "io", "out"}


def test_sym_rule_moves_generic_path_convs_to_their_own_term() -> None:
    """Under "sym", a conv MLAS's symmetric int8 kernels take (>= 16 output channels, a multiple
    of 8; input channels a multiple of 4) keeps its MACs; the stem (3 input channels) and an
    8-channel conv go to gen_macs with their outputs packed to the block."""
    from edgecompress.cost.estimate import kernel_features
    from edgecompress.cost.layers import LayerCost

    def conv(name: str, cin: int, cout: int, hw: int = 32) -> LayerCost:
        out = cout * hw * hw
        return LayerCost(name, "Conv2d", "conv", out * cin * 9, cin * cout * 9, cin * cout * 9, cout, cin * hw * hw, out,
                         (cout, hw, hw), in_channels=cin)

    layers = [conv("stem", 3, 8), conv("narrow", 8, 8), conv("wide", 8, 16), conv("odd", 16, 20)]
    f = kernel_features(layers)
    assert f["conv_macs@sym16"] == layers[2].macs
    assert f["gen_macs@sym16"] == pytest.approx(layers[0].macs * 2 + layers[1].macs * 2 + layers[3].macs * 32 / 20)
    assert f["gen_macs"] == 0.0 and f["conv_mem@sym16"] == f["conv_mem"]
    assert f["conv_macs"] == sum(c.macs for c in layers)


def test_calibration_without_a_padding_rule_pads_inputs_and_outputs(host, tmp_path: Path) -> None:
    """A file written before the padding rules (``channel_block`` only, no generic-path term)
    predicts as it did then; a bad rule or block in a file is a one-line error."""
    specs = probe_specs(6, (3, 32, 32))
    cal = Calibration("host", measurements=[Measurement("onnxruntime-cpu", "fp32", s, 0.1 + 0.01 * i, 0.0, 0.0, 100)
                                            for i, s in enumerate(specs)])
    cal.refit(host)
    path = tmp_path / "cal.json"
    cal.save(path)
    data = json.loads(path.read_text())
    fit_entry = data["fits"]["onnxruntime-cpu:fp32"]
    fit_entry.pop("padding")
    fit_entry["coef"].pop("gen_macs")  # nor the generic-path term
    fit_entry["channel_block"] = 16
    path.write_text(json.dumps(data))
    pred = LatencyPredictor(host, Calibration.load(path, "host"))
    feats = spec_cost(specs[0]).features
    assert pred.predict(feats, "onnxruntime-cpu", "fp32") == pytest.approx(
        predict({**fit_entry["coef"], "gen_macs": 0.0}, feats, "16"))
    for field, value, match in (("padding", "both", r"fits\.onnxruntime-cpu:fp32\.padding = 'both': choose one of io, none, out, sym"),
                                ("channel_block", "16", r"channel_block = '16': a whole number >= 1")):
        bad = json.loads(json.dumps(data))
        bad["fits"]["onnxruntime-cpu:fp32"][field] = value
        path.write_text(json.dumps(bad))
        with pytest.raises(CalibrationError, match=match):
            Calibration.load(path, "host")


def test_bad_calibration_inputs(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="allowed"):
        parse_runtime_key("onnxruntime:fp32")
    bad = tmp_path / "x.calibration.json"
    bad.write_text(json.dumps({"kind": "something"}))
    with pytest.raises(CalibrationError, match="not a latency calibration"):
        Calibration.load(bad, "host")
    bad.write_text("{")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(bad, "host")


@pytest.mark.slow
def test_calibrate_cli_measures_real_models_and_adds(host, tmp_path: Path) -> None:
    """Two tiny probes exported with the real exporter and timed in ONNX Runtime, then one more."""
    out = tmp_path / "cal.json"
    args = ["calibrate", "--device", host.source, "--probes", "2", "--runtime", "onnxruntime-cpu:fp32", "--input", "3x8x8",
            "--runs", "20", "--warmup", "2", "--repeats", "1", "--output", str(out), "--no-progress"]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["measurements"] == 2 and data["held_out"]["onnxruntime-cpu:fp32"]["n"] == 2
    assert data["fits"]["onnxruntime-cpu:fp32"]["padding"] in {"none", "io", "out"}  # "sym" is ORT int8's only
    # the machine-state gate timed its sentinel in both stages (once per round of <= 4 files)
    assert set(data["gate"]) == {"kernel profiling", "whole models"}
    assert all(g["sentinel_readings"] >= 1 and g["rounds"] >= 2 for g in data["gate"].values())
    saved = json.loads(out.read_text())
    assert all(m["latency_ms"] > 0 for m in saved["measurements"])
    res = CliRunner().invoke(cli, [*args[:4], "1", *args[5:], "--no-gate"])
    assert res.exit_code == 0, res.output
    assert "1 new probes, 3 measurements" in res.output and "within ±10%" in res.output
    assert "conv layout " in res.output
    # The saved fit now drives selection on this profile.
    pred = LatencyPredictor(host, Calibration.load(out, "host"))
    assert pred.coefficients("onnxruntime-cpu", "fp32")[1] == "calibrated (n=3)"


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.parametrize("key", ["tflite-xnnpack:int8", "tflite-xnnpack:fp32"])
def test_calibrate_cli_tflite_through_onnx2tf_and_litert(host, tmp_path: Path, key: str) -> None:
    """The TFLite path end to end: a real onnx2tf conversion and LiteRT timing of one tiny probe
    (it once broke when onnx2tf's output file names changed, and nothing noticed)."""
    pytest.importorskip("onnx2tf")
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(cli, ["calibrate", "--device", host.source, "--probes", "1", "--runtime", key, "--input", "3x8x8",
                                   "--runs", "10", "--warmup", "2", "--repeats", "1", "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert saved["measurements"] and all(m["latency_ms"] > 0 for m in saved["measurements"])


def test_calibrate_cli_rejects_bad_runtime(host) -> None:
    res = CliRunner().invoke(cli, ["calibrate", "--device", host.source, "--runtime", "tensorrt:fp32"])
    assert res.exit_code == 2 and "not allowed" in res.output


def test_host_calibration_from_another_cpu_is_not_used(host) -> None:
    _, _, yp, _, _ = _synthetic(host, 4, 0, noise=0.0)
    specs = probe_specs(4, (3, 32, 32))
    ms = [Measurement("onnxruntime-cpu", "fp32", s, y, y, 0.0, 10) for s, y in zip(specs, yp, strict=True)]
    for hardware, expected in (("Some Other CPU", "priors"), (host.hardware.soc, "calibrated (n=4)")):
        cal = Calibration("host", hardware, list(ms))
        cal.refit(host)
        cal.save(host.calibration_path)
        pred = LatencyPredictor.for_profile(host)
        assert pred.coefficients("onnxruntime-cpu", "fp32")[1] == expected


def test_rounds_in_a_slow_machine_state_do_not_count(host, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow state that lasts minutes makes two rounds agree while both are slow (seen on the
    Intel AMX VM: probes 30-70% slow for their first two rounds). The sentinel (the first file,
    timed before each block of four) exposes it: in hindsight, once the machine has run faster,
    the rounds measured in slow blocks are rejected and those models measured again. Scripted
    timer, 12 files (three blocks a round): the machine is 1.5x slow for round 1 and the first
    block of round 2, normal after."""
    import edgecompress.cost.calibrate as calib

    base = {f"m{i:02d}": float(i + 1) for i in range(12)}
    calls: list[str] = []

    def fake_measure(path: Path, *args: object, **kw: object) -> tuple[float, float, float, float | None]:
        calls.append(path.name)
        ms = base[path.name] * (1.5 if len(calls) <= 15 + 5 else 1.0)  # round 1: 3 x (sentinel + 4 files)
        return ms, ms * 1.1, 0.01, 3.0

    monkeypatch.setattr(calib, "measure_file", fake_measure)
    spec = probe_specs(1, (3, 8, 8))[0]
    items = [(spec, "onnxruntime-cpu", "fp32", Path(n)) for n in base]

    def measure(gate: bool, log: list[dict[str, object]] | None = None) -> list[Measurement]:
        calls.clear()
        return calib.measure_all(items, host, repeats=2, extra_rounds=3, progress=False, gate=gate, gate_log=log)

    # without the gate the first block's two slow rounds agree and are kept: 1.5x
    assert [m.latency_ms for m in measure(False)][:4] == [1.5, 3.0, 4.5, 6.0]
    log: list[dict[str, object]] = []
    ms = measure(True, log)
    assert [m.latency_ms for m in ms] == list(base.values())
    # the first block needs two clean rounds to confirm its figure; the rest had one in round 2
    assert ms[0].round_p50_ms == (1.5, 1.5, 1.0, 1.0) and [len(m.round_p50_ms) for m in ms] == [4] * 4 + [3] * 8
    assert log[0]["rounds_rejected"] == 12 + 4 and log[0]["sentinel_best_ms"] == 1.0
    assert log[0]["models_without_clean_round"] == 0
    # a machine that is slow throughout is consistent with itself: nothing is rejected
    monkeypatch.setattr(calib, "measure_file", lambda p, *a, **k: (base[p.name] * 1.5, 1.0, 0.01, 3.0))
    log.clear()
    ms = measure(True, log)
    assert [m.latency_ms for m in ms] == [v * 1.5 for v in base.values()] and log[0]["rounds_rejected"] == 0
    # one lucky fast sentinel reading does not set the bar (the second fastest does)
    st = run_rounds(2, lambda i: 1.0, repeats=3, extra_rounds=0, sentinel=iter([0.5, 1.0, 1.02]).__next__)
    assert st.reference() == 1.0 and st.clean_flags(0) == [True, True, True]


def test_unsettled_models_get_extra_rounds_until_two_agree(host, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interference can hold a whole round: a model whose two fastest round medians disagree by
    more than AGREE_PCT is measured again (interleaved, only the unsettled ones) until two agree
    or the extra rounds run out; settled models are not re-measured. The timer is scripted:
    this checks the schedule, the real measurement path is test_memory_probe's."""
    import edgecompress.cost.calibrate as calib

    script = {"calm": [1.00, 1.01], "burst": [1.50, 1.00, 1.02], "storm": [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]}
    calls: list[str] = []

    def fake_measure(path: Path, *args: object, **kw: object) -> tuple[float, float, float, float | None]:
        calls.append(path.name)
        ms = script[path.name][sum(c == path.name for c in calls) - 1]
        return ms, ms * 1.1, 0.01, 3.0

    monkeypatch.setattr(calib, "measure_file", fake_measure)
    spec = probe_specs(1, (3, 8, 8))[0]
    items = [(spec, "onnxruntime-cpu", "fp32", Path(n)) for n in script]
    got = {it[3].name: m for it, m in zip(items, calib.measure_all(items, host, repeats=2, extra_rounds=3, progress=False,
                                                                   gate=False), strict=True)}
    assert got["calm"].round_p50_ms == (1.00, 1.01) and got["calm"].latency_ms == 1.00
    assert got["burst"].round_p50_ms == (1.50, 1.00, 1.02) and got["burst"].latency_ms == 1.00
    assert len(got["storm"].round_p50_ms) == 5 and got["storm"].latency_ms == 1.0  # capped at 2 + 3 rounds
    # interleaved: round 3 measures burst and storm, rounds 4-5 storm alone
    assert calls[6:] == ["burst", "storm", "storm", "storm"]
    assert not unsettled([1.0]) and unsettled([1.0, 1.05]) and not unsettled([1.3, 1.0, 1.02])
    monkeypatch.setattr(calib, "measure_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured")))
    res = CliRunner().invoke(cli, ["calibrate", "--device", host.source, "--extra-rounds", "-1"])
    assert res.exit_code == 2 and "--extra-rounds -1 is not allowed" in res.output
