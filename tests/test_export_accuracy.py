"""Accuracy-aware int8 and the deploy choice: real ONNX Runtime quantization, tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export_support import case, make_data, outlier_case

from edgecompress.artifacts import ExportArtifact
from edgecompress.errors import ConfigError, ExportError, ParityError
from edgecompress.export import ExportConfig, export_module
from edgecompress.export.deploy import (
    SUMMARY_NAME,
    check_require,
    choose_deployed,
    export_attempts,
    read_targets,
    require_deployable,
)

ONNX = ExportConfig(formats=("onnx",), precisions=("fp32", "int8"), calibration_size=64)


def _more_calibration(c: dict) -> dict:
    c["calib_x"], _ = make_data(320, 3, seed=2)  # a pool beyond calibration_size for the first step
    return c


def test_outlier_layer_misses_with_plain_ptq_then_passes_with_it_in_float(tmp_path: Path) -> None:
    # Plain PTQ alone: the outlier weight row rounds the head to zero and the gate fails.
    with pytest.raises(ParityError, match="model_int8.onnx: top-1 agreement"):
        export_module(config=ExportConfig(formats=("onnx",), precisions=("int8",), calibration_size=64, accuracy_aware=False),
                      out_dir=tmp_path / "plain", progress=False, **_more_calibration(outlier_case()))
    # Accuracy-aware: calibration cannot help (weights, not activations), the sensitivity
    # analysis finds the head, and keeping it in float passes.
    arts = export_module(config=ONNX, out_dir=tmp_path / "aware", progress=False, **_more_calibration(outlier_case()))
    int8 = next(a for a in arts if a.precision == "int8")
    assert int8.parity.passed and int8.parity.top1_agreement >= 0.99
    steps = [a.step for a in int8.attempts]
    assert steps[0] == "ptq" and "calibration" in steps and steps[-1] == "mixed-precision"
    assert not any(a.passed for a in int8.attempts[:-1]) and int8.attempts[-1].passed
    assert [a.chosen for a in int8.attempts].count(True) == 1 and int8.attempts[-1].chosen
    last = int8.attempts[-1]
    assert last.settings["float_nodes"] == ["/head/Gemm"] and 0 < last.float_share <= ONNX.max_float_share
    assert next(iter(last.settings["sensitivity_snr_db"])) == "/head/Gemm"  # ranked first
    assert {a.settings["calibrate_method"] for a in int8.attempts} >= {"minmax", "percentile", "entropy"}
    assert steps[1] == "float-logits" and int8.attempts[1].settings["float_logits"]
    assert [a.settings["images"] for a in int8.attempts if a.step == "calibration"] == [320, 320, 320]
    assert int8.attempts[0].settings["images"] == 64
    # The manifest beside the file carries the same record.
    again = ExportArtifact.load(Path(int8.path).with_name("model_int8.onnx.json"))
    assert again.attempts == int8.attempts


def test_steps_stop_at_the_first_attempt_that_passes(tmp_path: Path) -> None:
    c = case(3)
    c["calib_x"] = c["calib_x"] * 255  # every range 255x too wide: plain MinMax PTQ misses
    arts = export_module(config=ONNX, out_dir=tmp_path, progress=False, **c)
    int8 = next(a for a in arts if a.precision == "int8")
    assert int8.parity.passed and int8.attempts[0].step == "ptq" and not int8.attempts[0].passed
    # Percentile / entropy cannot undo a global 255x scale (measured): it takes layers in float.
    assert [a.passed for a in int8.attempts].count(True) == 1 and int8.attempts[-1].passed
    assert int8.attempts[-1].chosen and int8.attempts[-1].float_share <= ONNX.max_float_share


def test_miss_without_failing_the_export_then_deploy_choice(tmp_path: Path) -> None:
    # No weights may stay in float and no QAT: the outlier head cannot be rescued; the export still ends
    # with the fp32 file and records every attempt of the withheld int8 one.
    cfg = ExportConfig(formats=("onnx",), precisions=("fp32", "int8"), calibration_size=64, max_float_share=0.0,
                       qat_steps=0, fail_on_miss=False)
    arts = export_module(config=cfg, out_dir=tmp_path, progress=False, **outlier_case())
    assert [a.precision for a in arts] == ["fp32"] and not (tmp_path / "model_int8.onnx").exists()
    targets = read_targets(tmp_path)
    int8 = next(t for t in targets if t["precision"] == "int8")
    assert not int8["written"] and "best of" in int8["error"] and len(int8["attempts"]) >= 3
    dep = choose_deployed(arts, targets, ("onnx", "int8"))
    assert dep.artifact is arts[0] and dep.fallback
    assert dep.reason.startswith("model_fp32.onnx (fp32,") and "model_int8.onnx missed the parity gate" in dep.reason
    require_deployable(dep, None)  # no requirement: deploying fp32 is fine
    with pytest.raises(ParityError, match=r"^export: --require int8: model_fp32.onnx") as err:
        require_deployable(dep, "int8")
    assert "\n" not in str(err.value)
    rows = export_attempts(targets)
    assert [r["written"] for r in rows if r["precision"] == "fp32"] == [True]
    assert not any(r["written"] for r in rows if r["precision"] == "int8")


def test_deployment_follows_the_precision_selection_chose_unless_one_is_required() -> None:
    """Selection predicts each precision on the device and budgets the fastest; the build deploys
    that one (a calibrated x86 ONNX Runtime can run a tiny student faster in fp32), int8 without
    a choice, and what --require names over both."""
    import dataclasses

    from edgecompress.artifacts import SelectionInfo, StudentSpec
    from edgecompress.profiles import load_profile
    from edgecompress.summary import deployed_target

    host, pixel7 = load_profile("host"), load_profile("pixel7")
    spec = StudentSpec("mobilenet", "c8", (3, 32, 32), 10)
    assert deployed_target(host, spec) == ("onnx", "int8")  # no selection record: int8
    def chose(precision: str) -> StudentSpec:
        info = SelectionInfo(device="host", criterion="", precision=precision, budget={}, predicted_latency_ms=0.1,
                             peak_ram_mb=1.0, size_mb=0.1, latency_source="", candidates=1, fitting=1)
        return dataclasses.replace(spec, selection=info)

    fp32 = chose("fp32")
    assert deployed_target(host, fp32) == ("onnx", "fp32")
    assert deployed_target(host, fp32, require="int8") == ("onnx", "int8")
    assert deployed_target(pixel7, fp32) == ("tflite", "fp32")
    assert deployed_target(pixel7, chose("int8")) == ("tflite", "full-int8")


def test_deploy_prefers_passing_int8_and_names_nothing_when_all_fail(tmp_path: Path) -> None:
    arts = export_module(config=ONNX, out_dir=tmp_path, progress=False, **case(3))
    dep = choose_deployed(arts, read_targets(tmp_path), ("onnx", "int8"))
    assert dep.precision == "int8" and not dep.fallback and "passed the parity gate" in dep.reason
    none = choose_deployed([], read_targets(tmp_path), ("tflite", "full-int8"))
    assert none.artifact is None and none.reason.startswith("nothing to deploy")
    with pytest.raises(ParityError, match="^export: nothing to deploy"):
        require_deployable(none, None)
    summary = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert all(t["attempts"] == [] for t in summary["targets"])  # both passed as built: no tuning


def test_require_and_config_values_are_checked() -> None:
    check_require("int8", ("fp32", "int8"), "pixel7")
    with pytest.raises(ConfigError, match="require = 'fp16' is not allowed for device rpi4"):
        check_require("fp16", ("fp32", "int8"), "rpi4")
    with pytest.raises(ExportError, match="max_float_share 2"):
        ExportConfig(max_float_share=2)
    with pytest.raises(ExportError, match="calibration_pool_size 0"):
        ExportConfig(calibration_pool_size=0)


# --------------------------------------------------------------------------- end to end in build


@pytest.fixture(scope="module")
def build_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from edgecompress.distill import demo_teacher
    from edgecompress.profiles import builtin_profiles_dir

    teacher = demo_teacher("digits", steps=40, progress=False)
    d = tmp_path_factory.mktemp("profiles")
    text = (builtin_profiles_dir() / "host.toml").read_text()  # ONNX Runtime, fp32 + int8
    (d / "ci-host8.toml").write_text(text.replace('name = "host"', 'name = "ci-host8"').replace(
        "latency_budget_ms = 0.5", "latency_budget_ms = 5.0"))
    return d, teacher


def _build(setup: tuple[Path, Path], out: Path, *extra: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from edgecompress.cli.main import cli

    profiles, teacher = setup
    # 150 steps: a student that tells the digits apart (a 5-step one predicts one class, and
    # any int8 rounding "agrees" with it).
    return CliRunner().invoke(cli, [
        "build", "--device", "ci-host8", "--profiles-dir", str(profiles), "--teacher", str(teacher), "--data", "digits",
        "--method", "kd", "--epochs", "1", "--steps-per-epoch", "150", "--runs", "5", "--warmup", "1", "--out", str(out),
        "--quiet", *extra])


def _student_with_outlier_layer(monkeypatch: pytest.MonkeyPatch, dead: int) -> None:
    """The distilled student, as export loads it, gets the outlier-weight layer (same float logits)."""
    from test_export_support import OutlierGemm

    import edgecompress.export.checkpoint as ck

    real = ck.load_student
    monkeypatch.setattr(ck, "load_student", lambda c, *a, **k: OutlierGemm(real(c, *a, **k), c.spec.num_classes, dead).eval())


@pytest.mark.slow
def test_build_int8_misses_plain_ptq_and_deploys_after_the_automatic_steps(
    tmp_path: Path, build_setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _student_with_outlier_layer(monkeypatch, dead=1)
    out = tmp_path / "run"
    res = _build(build_setup, out, "--require", "int8")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    v = summary["verdict"]
    assert v["deployed_precision"] == "int8" and not v["deployed_fallback"]
    assert "after" in v["deployed_reason"] and "accuracy-aware step(s)" in v["deployed_reason"]
    rows = [a for a in summary["export_attempts"] if a["precision"] == "int8"]
    assert rows[0]["step"] == "ptq" and not rows[0]["passed"]
    assert rows[-1]["step"] == "mixed-precision" and rows[-1]["passed"] and rows[-1]["written"]
    # Every attempt carries its predicted device latency: layers kept in float move it from the
    # int8 prediction towards the fp32 one by their share of the weights.
    fp32 = next(a for a in summary["export_attempts"] if a["precision"] == "fp32")
    lo, hi = sorted((rows[0]["predicted_latency_ms"], fp32["predicted_latency_ms"]))
    assert rows[-1]["float_share"] > 0 and lo < rows[-1]["predicted_latency_ms"] < hi
    assert "predicted ms on" in (out / "report.html").read_text()
    assert "why        model_int8.onnx" in res.output
    assert "Quantization attempts" in (out / "report.html").read_text()


@pytest.mark.slow
def test_build_int8_miss_deploys_fp32_and_require_int8_fails(
    tmp_path: Path, build_setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4000 outlier features: the layer holds most of the weights; keeping it in float would
    # exceed max_float_share, so int8 cannot pass and the build deploys fp32, saying why.
    _student_with_outlier_layer(monkeypatch, dead=4000)
    out = tmp_path / "run"
    res = _build(build_setup, out)
    assert res.exit_code == 0, res.output
    v = json.loads((out / "summary.json").read_text())["verdict"]
    assert v["deployed_precision"] == "fp32" and v["deployed_fallback"]
    assert "model_int8.onnx missed the parity gate" in v["deployed_reason"]
    assert "why        model_fp32.onnx (fp32," in res.output
    # The same run with --require int8 resumes every stage, then fails in one line, exit 2.
    res = _build(build_setup, out, "--require", "int8")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export: --require int8: model_fp32.onnx"), res.output


def test_build_require_a_precision_the_device_cannot_deploy(tmp_path: Path, build_setup: tuple[Path, Path]) -> None:
    out = tmp_path / "run"
    res = _build(build_setup, out, "--require", "fp16")
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        "error: require = 'fp16' is not allowed for device ci-host8 (its runtime deploys: fp32, int8)"]
    assert not (out / "distill").exists()


@pytest.mark.slow
@pytest.mark.tflite
def test_tflite_full_int8_recalibrates_then_passes_with_the_head_in_float(tmp_path: Path) -> None:
    # The outlier weight row sits in the linear head: recalibrating (a second onnx2tf run on the
    # larger pool) cannot help; the TFLite converter re-quantizing onnx2tf's saved model with
    # FULLY_CONNECTED denylisted can, through the real LiteRT interpreter.
    cfg = ExportConfig(formats=("tflite",), precisions=("fp32", "int8"), calibration_size=64, fail_on_miss=False)
    arts = export_module(config=cfg, out_dir=tmp_path, progress=False, **_more_calibration(outlier_case()))
    assert [a.precision for a in arts] == ["fp32", "full-int8"]
    int8 = arts[1]
    assert [a.step for a in int8.attempts] == ["ptq", "calibration", "mixed-precision"]
    assert [a.settings.get("images") for a in int8.attempts] == [64, 320, 320]
    assert not any(a.passed for a in int8.attempts[:2]) and int8.attempts[2].passed and int8.attempts[2].chosen
    assert int8.quant_settings["float_ops"] == ["FULLY_CONNECTED"] and 0 < int8.attempts[2].float_share <= 0.25
    # that converter path has float32 I/O: the manifest says so, and the gate ran the file as it is
    assert int8.input.dtype == "float32" and int8.quant_settings["io"] == "float32"
    assert int8.parity.passed and int8.parity.top1_agreement >= 0.99
    dep = choose_deployed(arts, read_targets(tmp_path), ("tflite", "full-int8"))
    assert dep.precision == "full-int8" and not dep.fallback


def test_qat_puts_weights_on_the_runtime_int8_grid_and_records_itself() -> None:
    import numpy as np
    import torch
    from test_export_support import trained

    from edgecompress.export.qat import qat_finetune

    c = case(3)
    model, rec = qat_finetune(trained(3), c["calib_x"], qmax=64, steps=5)
    w = model.head.weight.detach()  # a Linear: no BN fold, so the grid is the weight's own
    scale = w.abs().amax(1, keepdim=True) / 64
    np.testing.assert_allclose((w / scale).numpy(), torch.round(w / scale).numpy(), atol=1e-3)
    conv, bn = model.stem[0], model.stem[1]  # Conv -> BN: the grid is the folded weight's
    folded = conv.weight.detach() * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().view(-1, 1, 1, 1)
    fscale = folded.abs().flatten(1).amax(1).view(-1, 1, 1, 1) / 64
    np.testing.assert_allclose((folded / fscale).numpy(), torch.round(folded / fscale).numpy(), atol=1e-3)
    assert rec["qat_steps"] == 5 and rec["qat_weight_qmax"] == 64 and rec["qat_loss_last"] is not None
    assert trained(3).head.weight is not model.head.weight  # the float student is left as it was
