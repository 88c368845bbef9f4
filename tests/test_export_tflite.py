"""Exporter: TFLite targets through onnx2tf (offline) and the LiteRT interpreter.

onnx2tf is slow (TensorFlow import + conversion, ~10-30 s per run here), so each fixture
converts once per module and the tests share it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from test_export_support import case

from edgecompress.artifacts import ExportArtifact, sha256_file
from edgecompress.errors import ExportError
from edgecompress.export import ExportConfig, export_module
from edgecompress.export import tflite_recipes as tr
from edgecompress.export._onnx2tf_worker import BLOCKED_MARK
from edgecompress.export.parity import load_interpreter

pytestmark = pytest.mark.tflite


@pytest.fixture(scope="module")
def rgb_nhwc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ExportArtifact]]:
    out = tmp_path_factory.mktemp("tfl3")
    cfg = ExportConfig(formats=("onnx", "tflite"), precisions=("fp32", "fp16", "int8"))
    arts = export_module(config=cfg, out_dir=out, progress=False, **case(3))
    return out, {f"{a.format}:{a.precision}": a for a in arts}


@pytest.fixture(scope="module")
def gray_nchw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ExportArtifact]]:
    out = tmp_path_factory.mktemp("tfl1")
    cfg = ExportConfig(formats=("tflite",), precisions=("fp32", "dynamic-int8", "int8"), layout="nchw", int8_io="uint8")
    arts = export_module(config=cfg, out_dir=out, progress=False, **case(1))
    return out, {a.precision: a for a in arts}


def test_rgb_every_precision_passes_parity_through_litert(rgb_nhwc) -> None:
    out, arts = rgb_nhwc
    assert sorted(arts) == ["onnx:fp16", "onnx:fp32", "onnx:int8", "tflite:fp16", "tflite:fp32", "tflite:full-int8"]
    for key, a in arts.items():
        assert a.parity is not None and a.parity.passed, (key, a.parity)
        assert Path(a.path).is_file() and ExportArtifact.load(a.path + ".json") == a
        assert a.sha256 == sha256_file(a.path)
    assert Path(arts["tflite:fp32"].path).name == "model_fp32.tflite"
    assert Path(arts["tflite:full-int8"].path).name == "model_full_int8.tflite"
    assert arts["tflite:fp32"].parity.max_abs_diff <= 1e-4
    assert arts["tflite:fp16"].size_bytes < arts["tflite:fp32"].size_bytes


def test_rgb_tflite_is_nhwc_without_transposes_and_int8_io(rgb_nhwc) -> None:
    _, arts = rgb_nhwc
    fp32, int8 = arts["tflite:fp32"], arts["tflite:full-int8"]
    assert fp32.input.layout == "NHWC" and fp32.input.shape == (1, 16, 16, 3) and fp32.input.dtype == "float32"
    assert fp32.op_counts.get("TRANSPOSE", 0) == 0 and "DELEGATE" not in fp32.op_counts
    assert fp32.op_counts.get("CONV_2D") == 3
    assert int8.input.dtype == "int8" and int8.input.quant_scale > 0 and -128 <= int8.input.quant_zero_point <= 127
    interp = load_interpreter(Path(int8.path))
    assert interp.get_output_details()[0]["dtype"] == np.int8
    # Weights really are int8: the file is well under the fp32 one.
    assert int8.size_bytes < 0.8 * fp32.size_bytes


def test_tflite_matches_torch_on_manual_nhwc_input(rgb_nhwc) -> None:
    """Independent of the gate's own runner: feed NHWC by hand, compare with eager PyTorch."""
    _, arts = rgb_nhwc
    c = case(3)
    x = c["val_x"][:5]
    ref = c["model"](torch.from_numpy(x)).detach().numpy()
    interp = load_interpreter(Path(arts["tflite:fp32"].path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i : i + 1].transpose(0, 2, 3, 1).copy())
        interp.invoke()
        np.testing.assert_allclose(interp.get_tensor(out["index"])[0], ref[i], atol=1e-4)


def test_conversion_was_offline_and_log_kept(rgb_nhwc) -> None:
    out, arts = rgb_nhwc
    log = Path(arts["tflite:fp32"].log)
    assert log.parent == out and log.is_file()
    text = log.read_text()
    assert "onnx2tf" in text.lower() or "tflite" in text.lower()
    assert BLOCKED_MARK not in text
    assert "onnx2tf Add layout rescue guard disabled" in text  # the ResNet fix is active
    # onnx2tf rewrites its input in place; the published ONNX must be the one we checked.
    assert sha256_file(arts["onnx:fp32"].path) == arts["onnx:fp32"].sha256
    assert not list(out.glob(".export-work-*")) and not list(out.glob("*.npy"))


def test_gray_nchw_uint8_io_and_dynamic_range(gray_nchw) -> None:
    _, arts = gray_nchw
    assert sorted(arts) == ["dynamic-int8", "fp32", "full-int8"]
    for a in arts.values():
        assert a.parity.passed, (a.precision, a.parity)
        assert a.input.layout == "NCHW" and a.input.shape == (1, 1, 16, 16)
    assert Path(arts["dynamic-int8"].path).name == "model_dynamic_int8.tflite"
    full = arts["full-int8"]
    assert full.input.dtype == "uint8" and 0 <= full.input.quant_zero_point <= 255
    assert arts["dynamic-int8"].input.dtype == "float32"
    assert arts["dynamic-int8"].size_bytes < arts["fp32"].size_bytes


@pytest.mark.slow
def test_resnet_student_converts_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: onnx2tf 1.29's Add "rescue guard" transposed ResNet residuals to NCHW and the
    next strided conv read them as NHWC (max |diff| 0.05, agreement 55%) until we disabled it.
    Also exported to a *relative* folder (regression: the converter runs in its own working
    directory and could not find a relative request path)."""
    from edgecompress.artifacts import Preprocessing, StudentSpec
    from edgecompress.students import create_student
    from edgecompress.students.families import TEST_RESNET

    shape = (3, 32, 32)
    torch.manual_seed(0)
    model = create_student(StudentSpec(family="test_resnet", arch=TEST_RESNET, input_shape=shape, num_classes=5)).eval()
    x = np.random.default_rng(0).normal(size=(32, *shape)).astype(np.float32)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    pre = Preprocessing(input_shape=shape, mean=(0.0,) * 3, std=(1.0,) * 3)
    monkeypatch.chdir(tmp_path)
    (art,) = export_module(model, pre, ExportConfig(formats=("tflite",), precisions=("fp32",)), Path("rel/out"), x, x, y, progress=False)
    assert (tmp_path / "rel" / "out" / "model_fp32.tflite").is_file()
    assert art.parity.passed and art.parity.max_abs_diff < 1e-5
    assert art.op_counts.get("TRANSPOSE", 0) == 0


def test_network_guard_blocks_and_marks_attempts() -> None:
    code = (
        "from edgecompress.export._onnx2tf_worker import block_network; block_network()\n"
        "import urllib.request\n"
        "try:\n    urllib.request.urlopen('http://127.0.0.1:9/', timeout=2)\nexcept OSError as e:\n    print('refused', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "refused" in res.stdout and BLOCKED_MARK in res.stderr


def _conv_onnx(path: Path, channels: int, extra_op: tuple[str, str] | None = None) -> Path:
    """A 1x1-conv ONNX model (optionally followed by ``extra_op`` = (op_type, domain))."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, channels, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [channels, channels, 1, 1], np.eye(channels, dtype=np.float32).ravel())
    nodes = [helper.make_node("Conv", ["input", "w"], ["c" if extra_op else "logits"], name="stem_conv")]
    opsets = [helper.make_opsetid("", 17)]
    if extra_op:
        nodes.append(helper.make_node(extra_op[0], ["c", "c"], ["logits"], name="user_block_7", domain=extra_op[1]))
        opsets.append(helper.make_opsetid(extra_op[1], 1))
    model = helper.make_model(helper.make_graph(nodes, "g", [inp], [out], [w]), opset_imports=opsets, ir_version=8)
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_without_the_offline_sample_onnx2tf_reaches_for_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trap is real: drop the sample file and onnx2tf tries to download it (and we say so)."""
    onnx_path = _conv_onnx(tmp_path / "m.onnx", 3)
    monkeypatch.setattr(tr, "write_offline_sample", lambda folder: folder / tr.SAMPLE_NAME)
    with pytest.raises(ExportError, match="onnx2tf tried to use the network"):
        tr.run_onnx2tf(onnx_path, tmp_path / "w", np.zeros((4, 3, 8, 8), np.float32), layout="nhwc", integer=False,
                       dynamic=False, io_dtype="int8", timeout_s=600, log_path=tmp_path / "log.txt")
    assert BLOCKED_MARK in (tmp_path / "log.txt").read_text()


@pytest.mark.slow
def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    onnx_path = _conv_onnx(tmp_path / "m.onnx", 3, extra_op=("BiasSoftmax", "com.microsoft"))
    with pytest.raises(ExportError, match=r"onnx2tf cannot convert op 'BiasSoftmax' at node 'user_block_7' \(log: "):
        tr.run_onnx2tf(onnx_path, tmp_path / "w", np.zeros((4, 3, 8, 8), np.float32), layout="nhwc", integer=False,
                       dynamic=False, io_dtype="int8", timeout_s=600, log_path=tmp_path / "log.txt")
