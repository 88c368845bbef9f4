"""Exporter: ONNX targets through ONNX Runtime, the parity gate, config and error cases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_export_support import case

from edgecompress.artifacts import ExportArtifact, sha256_file
from edgecompress.errors import ExportError, MissingExtraError, ParityError
from edgecompress.export import ExportConfig, export_module
from edgecompress.export import registry as reg
from edgecompress.export.api import SUMMARY_NAME
from edgecompress.export.config import parse_list
from edgecompress.export.parity import run_onnx

ONNX_ALL = ExportConfig(formats=("onnx",), precisions=("fp32", "fp16", "int8"))


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ExportArtifact]]:
    out = tmp_path_factory.mktemp("onnx3")
    return out, export_module(config=ONNX_ALL, out_dir=out, progress=False, **case(3))


def test_every_onnx_precision_passes_parity_through_onnxruntime(onnx_export) -> None:
    out, arts = onnx_export
    assert [(a.format, a.precision, Path(a.path).name) for a in arts] == [
        ("onnx", "fp32", "model_fp32.onnx"),
        ("onnx", "fp16", "model_fp16.onnx"),
        ("onnx", "int8", "model_int8.onnx"),
    ]
    by = {a.precision: a for a in arts}
    for a in arts:
        assert a.parity is not None and a.parity.passed, a.parity
        assert a.parity.n_samples == 100
        assert a.parity.top1_agreement >= 0.99
    assert by["fp32"].parity.max_abs_diff <= 1e-4
    # fp16 and int8 really changed the numbers (a copy of the fp32 file would show 0 here).
    assert by["fp16"].parity.max_abs_diff > 1e-5
    assert by["int8"].parity.max_abs_diff > by["fp16"].parity.max_abs_diff
    assert by["int8"].op_counts.get("QuantizeLinear", 0) > 0 and by["int8"].op_counts.get("DequantizeLinear", 0) > 0
    assert "QuantizeLinear" not in by["fp32"].op_counts
    assert "ReduceMean" not in by["fp32"].op_counts  # x.mean((2, 3)) became GlobalAveragePool
    fp16_inits = onnx.load(by["fp16"].path).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16_inits)
    assert by["fp16"].size_bytes < by["fp32"].size_bytes


def test_manifest_round_trip_and_hash(onnx_export) -> None:
    out, arts = onnx_export
    for a in arts:
        manifest = Path(a.path + ".json")
        assert ExportArtifact.load(manifest) == a
        assert a.sha256 == sha256_file(a.path) and a.size_bytes == Path(a.path).stat().st_size
        assert a.input.layout == "NCHW" and a.input.shape == (1, 3, 16, 16) and a.input.dtype == "float32"
        assert a.input.preprocessing.mean == (0.5, 0.5, 0.5)
        assert "Transpose" not in a.op_counts
        assert a.export_s is not None and a.export_s >= 0
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert [t["written"] for t in summary["targets"]] == [True, True, True]
    assert not list(out.glob(".export-work-*")) and not list(out.glob(".*.tmp"))


def test_onnx_has_dynamic_batch_and_matches_torch_on_a_batch(onnx_export) -> None:
    _, arts = onnx_export
    c = case(3)
    x = c["val_x"][:7]
    ref = c["model"](torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run_onnx(Path(arts[0].path), x), ref, atol=1e-4)


def test_dynamo_exporter(tmp_path: Path) -> None:
    cfg = ExportConfig(formats=("onnx",), precisions=("fp32",), dynamo=True, opset=18)
    (art,) = export_module(config=cfg, out_dir=tmp_path, progress=False, **case(1))
    assert art.parity.passed and art.parity.max_abs_diff <= 1e-4
    assert art.input.shape == (1, 1, 16, 16)
    # opset 18 passes ReduceMean's axes as an input; the rewrite handles that form too.
    assert "ReduceMean" not in art.op_counts and art.op_counts["GlobalAveragePool"] == 1


def test_spatial_mean_rewrite_is_exact(tmp_path: Path) -> None:
    from edgecompress.export.graph_rewrites import spatial_mean_to_global_pool
    from edgecompress.export.onnx_recipes import torch_to_onnx

    class Heads(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            gate = torch.sigmoid(x.mean((2, 3), keepdim=True))  # SE-style, keepdims=1
            return (x * gate).mean((-1, -2)) + x.mean(1).flatten(1)[:, :3]  # a channel mean is left alone

    path = tmp_path / "m.onnx"
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
    torch_to_onnx(Heads(), (3, 5, 7), path, opset=17, dynamo=False)
    before = run_onnx(path, x)
    proto = onnx.load(str(path))
    assert spatial_mean_to_global_pool(proto) == 2
    onnx.save(proto, str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("GlobalAveragePool") == 2 and ops.count("ReduceMean") == 1
    np.testing.assert_allclose(run_onnx(path, x), before, atol=1e-6)


def test_parity_failure_names_artifact_and_numbers_and_keeps_what_passed(tmp_path: Path) -> None:
    c = case(3)
    # A real mistake: calibration data left in raw pixel scale (x255) instead of normalized.
    # int8 ranges then span 255x the real activations and the gate must catch it.
    c["calib_x"] = c["calib_x"] * 255
    stale = tmp_path / "model_int8.onnx"
    stale.write_bytes(b"left over from an earlier run")
    # Plain PTQ only: the accuracy-aware steps would clip the ranges and pass (tested apart).
    cfg = ExportConfig(formats=("onnx",), precisions=("int8", "fp32"), accuracy_aware=False)
    with pytest.raises(ParityError) as err:
        export_module(config=cfg, out_dir=tmp_path, progress=False, **c)
    msg = str(err.value)
    assert "model_int8.onnx: top-1 agreement" in msg and "< 99.00%" in msg and "accuracy drop" in msg
    assert "\n" not in msg and "model_fp32.onnx" not in msg
    assert (tmp_path / "model_fp32.onnx").is_file() and (tmp_path / "model_fp32.onnx.json").is_file()
    assert not stale.exists() and not (tmp_path / "model_int8.onnx.json").exists()
    summary = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert [(t["precision"], t["written"]) for t in summary["targets"]] == [("int8", False), ("fp32", True)]
    assert summary["targets"][0]["parity"]["top1_agreement"] < 0.99 and summary["targets"][0]["parity"]["failures"]


def test_parity_not_enforced_keeps_and_records_failure(tmp_path: Path) -> None:
    c = case(3)
    c["calib_x"] = c["calib_x"] * 255
    cfg = ExportConfig(formats=("onnx",), precisions=("int8",), enforce_parity=False, accuracy_aware=False)
    (art,) = export_module(config=cfg, out_dir=tmp_path, progress=False, **c)
    assert not art.parity.passed and art.parity.failures and Path(art.path).is_file()


def test_unsupported_torch_op_names_op_and_module(tmp_path: Path) -> None:
    class Svd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).flatten(2)[:, :, :4]
            return torch.linalg.svdvals(y)

    c = case(3)
    c["model"] = Svd().eval()
    with pytest.raises(ExportError, match=r"op 'aten::linalg_svdvals' at node 'Svd"):
        export_module(config=ExportConfig(formats=("onnx",), precisions=("fp32",)), out_dir=tmp_path, progress=False, **c)
    assert not list(tmp_path.glob("model_*")) and not list(tmp_path.glob(".export-work-*"))


def test_interrupted_export_leaves_no_finished_looking_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = reg._RECIPES[("onnx", "int8")]

    def interrupted(ctx):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    monkeypatch.setitem(reg._RECIPES, ("onnx", "int8"), dataclasses.replace(real, build=interrupted))
    with pytest.raises(KeyboardInterrupt):
        export_module(config=ExportConfig(formats=("onnx",), precisions=("fp32", "int8")), out_dir=tmp_path, progress=False, **case(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_NAME, "model_fp32.onnx", "model_fp32.onnx.json"]


def test_interrupted_copy_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecompress.export.api as api

    def half_copy(src, dst):  # noqa: ANN001, ANN202
        Path(dst).write_bytes(Path(src).read_bytes()[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(api.shutil, "copyfile", half_copy)
    with pytest.raises(KeyboardInterrupt):
        export_module(config=ExportConfig(formats=("onnx",), precisions=("fp32",)), out_dir=tmp_path, progress=False, **case(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_NAME]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"formats": ("onnx", "coreml")}, r"formats value 'coreml' is not allowed \(allowed: onnx, tflite\)"),
        ({"precisions": ("int4",)}, r"precisions value 'int4' is not allowed"),
        ({"layout": "chw"}, r"layout 'chw' is not allowed \(allowed: nhwc, nchw\)"),
        ({"opset": 12}, r"opset 12 is not allowed \(allowed: 17..21\)"),
        ({"dynamo": True, "opset": 17}, r"opset 17 is not allowed \(allowed: 18..21\)"),
        ({"calibration_size": 0}, r"calibration_size 0"),
        ({"min_top1_agreement": 1.5}, r"min_top1_agreement 1.5"),
        ({"int8_io": "int16"}, r"int8_io 'int16'"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ExportError, match=pattern):
        ExportConfig(**kwargs)


def test_config_from_dict_and_cli_list() -> None:
    assert ExportConfig.from_dict({"formats": ["onnx"], "precisions": ["fp32"]}).formats == ("onnx",)
    with pytest.raises(ExportError, match=r"unknown key 'precision' \(allowed: .*precisions"):
        ExportConfig.from_dict({"precision": ["fp32"]})
    assert parse_list("onnx, TFLite", "--format", ("onnx", "tflite")) == ("onnx", "tflite")
    with pytest.raises(ExportError, match="--format value 'tf'"):
        parse_list("onnx,tf", "--format", ("onnx", "tflite"))
    # dataclasses.asdict must work: the pipeline uses it as a cache key.
    assert json.dumps(dataclasses.asdict(ExportConfig()))


def test_recipes_registry_resolves_aliases_and_explains_refusals() -> None:
    assert ("tflite", "full-int8") in reg.list_recipes() and ("onnx", "int8") in reg.list_recipes()
    names = [r.filename for r in reg.resolve(("tflite",), ("fp32", "int8", "dynamic-int8", "full-int8"))]
    assert names == ["model_fp32.tflite", "model_full_int8.tflite", "model_dynamic_int8.tflite"]
    assert [r.filename for r in reg.resolve(("onnx",), ("int8", "fp16"))] == ["model_int8.onnx", "model_fp16.onnx"]
    with pytest.raises(ExportError, match="'dynamic-int8' is not available for onnx: quantize_dynamic"):
        reg.resolve(("onnx",), ("dynamic-int8",))


def test_bad_arrays_rejected_before_work(tmp_path: Path) -> None:
    c = case(3)
    c["val_x"] = c["val_x"][:, :1]
    with pytest.raises(ExportError, match=r"val_x has shape \(100, 1, 16, 16\); expected \(N, 3, 16, 16\)"):
        export_module(config=ONNX_ALL, out_dir=tmp_path / "o", progress=False, **c)
    c = case(3)
    c["val_y"] = c["val_y"][:5]
    with pytest.raises(ExportError, match="val_y has shape"):
        export_module(config=ONNX_ALL, out_dir=tmp_path / "o", progress=False, **c)
    assert not (tmp_path / "o").exists()


def test_missing_tflite_extra_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx2tf" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r'pip install "edgecompress\[tflite\]"'):
        export_module(config=ExportConfig(formats=("tflite",)), out_dir=tmp_path, progress=False, **case(3))
    assert not list(tmp_path.iterdir())
