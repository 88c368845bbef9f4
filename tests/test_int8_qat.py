"""int8 weight grid by CPU, and QAT on its own (``ExportConfig(qat=True)`` / ``export --qat``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_export_support import case

from edgecompress.artifacts import ExportArtifact
from edgecompress.errors import ExportError
from edgecompress.export import ExportConfig, export_module
from edgecompress.export.cpu_int8 import choose_weight_grid, cpu_flags

CPUINFO_VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
CPUINFO_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_weight_grid_follows_the_cpu() -> None:
    assert cpu_flags(CPUINFO_VNNI)[-1] == "avx512_vnni" and cpu_flags("Hardware\t: BCM2835\n") == ()
    vnni = choose_weight_grid(None, machine="x86_64", flags=cpu_flags(CPUINFO_VNNI))
    assert not vnni.reduce_range and vnni.bits == 8 and "avx512_vnni" in vnni.reason
    avx2 = choose_weight_grid(None, machine="x86_64", flags=cpu_flags(CPUINFO_AVX2))
    assert avx2.reduce_range and avx2.bits == 7 and "without VNNI" in avx2.reason
    amx = choose_weight_grid(None, machine="x86_64", flags=("avx2", "amx_int8"))
    assert amx.bits == 8
    arm = choose_weight_grid(None, machine="aarch64", flags=())
    assert arm.bits == 8 and "aarch64" in arm.reason
    forced = choose_weight_grid(True, machine="aarch64", flags=())
    assert forced.bits == 7 and "set in ExportConfig" in forced.reason
    assert forced.settings() == {"reduce_range": True, "weight_bits": 7, "weight_bits_reason": forced.reason}


@pytest.mark.parametrize(("fields", "match"), [
    ({"qat": True, "qat_steps": 0}, "qat is true but qat_steps is 0"),
    ({"qat": "yes"}, "qat 'yes' is not allowed"),
    ({"onnx_reduce_range": "auto"}, "onnx_reduce_range 'auto' is not allowed"),
])
def test_bad_qat_and_weight_grid_settings(fields: dict, match: str) -> None:
    with pytest.raises(ExportError, match=match):
        ExportConfig(**fields)


def test_int8_manifest_records_the_weight_grid_and_why(tmp_path: Path) -> None:
    cfg = ExportConfig(formats=("onnx",), precisions=("int8",), calibration_size=64, enforce_parity=False,
                       onnx_reduce_range=True)
    (int8,) = export_module(config=cfg, out_dir=tmp_path, progress=False, **case(3))
    again = ExportArtifact.load(tmp_path / "model_int8.onnx.json")
    assert again.quant_settings["weight_bits"] == 7 and "onnx_reduce_range=True" in again.quant_settings["weight_bits_reason"]
    assert again.quant_settings["activations"] == "uint8 asymmetric" and again.quant_settings == int8.quant_settings


def test_qat_alone_builds_onnx_int8_from_the_fine_tune_and_measures_its_parity(tmp_path: Path) -> None:
    cfg = ExportConfig(formats=("onnx",), precisions=("fp32", "int8"), calibration_size=64, qat=True, qat_steps=5,
                       enforce_parity=False)
    c = case(3)
    arts = {a.precision: a for a in export_module(config=cfg, out_dir=tmp_path, progress=False, **c)}
    int8 = arts["int8"]
    assert [a.step for a in int8.attempts] == ["qat"] and int8.attempts[0].chosen  # no PTQ attempt first
    q = int8.quant_settings
    assert q["qat_steps"] == 5 and q["qat_parity_images"] == len(c["val_x"])
    assert 0.0 <= q["qat_model_agreement"] <= 1.0 and 0.0 <= q["qat_model_vs_float_agreement"] <= 1.0
    assert q["qat_weight_qmax"] == (64 if q["reduce_range"] else 127)  # the grid the runtime uses
    assert arts["fp32"].quant_settings == {} and arts["fp32"].attempts == ()  # float files are not fine-tuned


def test_cli_rejects_qat_with_plain_ptq_before_any_work(tmp_path: Path) -> None:
    from edgecompress.cli.main import cli

    res = CliRunner().invoke(cli, ["export", "--checkpoint", str(tmp_path / "none.json"), "--qat", "--plain-ptq",
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        "error: export: --qat and --plain-ptq exclude each other (--qat skips post-training quantization)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.tflite
def test_qat_alone_on_the_tflite_path(tmp_path: Path) -> None:
    cfg = ExportConfig(formats=("tflite",), precisions=("int8",), calibration_size=64, qat=True, qat_steps=5,
                       enforce_parity=False)
    (int8,) = export_module(config=cfg, out_dir=tmp_path, progress=False, **case(3))
    assert int8.precision == "full-int8" and [a.step for a in int8.attempts] == ["qat"]
    assert int8.quant_settings["qat_weight_qmax"] == 127 and int8.quant_settings["qat_model_agreement"] >= 0.9
    assert int8.parity is not None and int8.parity.top1_agreement >= 0.9


def test_fake_quant_holds_the_tensors_and_ranges_of_the_ort_qdq_graph(tmp_path: Path) -> None:
    # A residual student (shortcut conv-BN, Add then ReLU, pool, linear head): the simulation
    # must quantize the same tensors ORT's QDQ graph quantizes, over the same ranges.
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from edgecompress.artifacts import StudentSpec
    from edgecompress.export.qat import _attach_fake_quant
    from edgecompress.students import create_student
    from edgecompress.students import families as fam

    torch.manual_seed(0)
    spec = StudentSpec(family="test_resnet", arch=fam.TEST_RESNET, input_shape=(3, 16, 16), num_classes=4, width_mult=1.0)
    model = create_student(spec).eval()
    c = case(3)
    c["model"] = model
    cfg = ExportConfig(formats=("onnx",), precisions=("int8",), calibration_size=64, enforce_parity=False,
                       accuracy_aware=False)
    (int8,) = export_module(config=cfg, out_dir=tmp_path, progress=False, **c)
    graph = onnx.load(int8.path).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ort_ranges = sorted(round(float(init[n.input[1]]) * 255, 3) for n in graph.node if n.op_type == "QuantizeLinear")
    quants, hooks = _attach_fake_quant(model)
    with torch.no_grad():
        model(torch.from_numpy(c["calib_x"][:64]))
    for h in hooks:
        h.remove()
    # A tensor hooked twice (an activation's output is also the next conv's input) counts once.
    sim_ranges = sorted({round(q.hi - q.lo, 3) for q in quants})
    assert len(ort_ranges) >= 5
    # ORT may keep one range for two names (Flatten after GlobalAveragePool): compare the sets
    np.testing.assert_allclose(sorted(set(ort_ranges)), sim_ranges, rtol=1e-3)


def test_simulated_logits_splits_the_scheme_into_weights_and_activations() -> None:
    # With nothing simulated the model is itself; the weight grid moves the logits by its
    # rounding only (per-channel, BN folded); the 8-bit tensors move them further; the model
    # given is never touched (the benchmark scores several modes on one model).
    import numpy as np
    import torch

    from edgecompress.artifacts import StudentSpec
    from edgecompress.export.qat import simulated_logits
    from edgecompress.students import create_student
    from edgecompress.students import families as fam

    torch.manual_seed(0)
    spec = StudentSpec(family="test_resnet", arch=fam.TEST_RESNET, input_shape=(3, 16, 16), num_classes=4, width_mult=1.0)
    model = create_student(spec).eval()
    x = np.random.default_rng(0).normal(size=(32, 3, 16, 16)).astype(np.float32)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    none = simulated_logits(model, x, x, weights=False, activations=False)
    w = simulated_logits(model, x, x, weights=True, activations=False)
    both = simulated_logits(model, x, x, weights=True, activations=True, qmax=64)
    np.testing.assert_allclose(none, ref, rtol=1e-6, atol=1e-6)
    err_w, err_both = np.abs(w - ref).max(), np.abs(both - ref).max()
    assert 0 < err_w < 0.05 * np.abs(ref).max() and err_both > err_w
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
