"""Fold the preprocessing into an ONNX artifact: a model that takes camera pixels.

A phone camera or a Pi's frame grabber gives ``uint8`` RGB pixels in NHWC order. Every
exported model otherwise expects float NCHW input already scaled, channel-ordered and
normalized exactly as in training, which each app has to re-implement (and a mismatch there
is silent). :func:`fold_preprocessing` prepends those steps to the graph::

    pixels uint8 (N, H, W, 3) -> Cast float -> Transpose NCHW -> [BGR: Gather channels 2,1,0]
    -> [1-channel model: BT.601 luma, a 1x1 Conv] -> x * (scale / std[c]) + (-mean[c] / std[c])

and the rest of the graph is unchanged (an int8 QDQ model's first QuantizeLinear simply reads
the normalized float). Resizing is not folded: frames come at every size and apps resize with
their platform's scaler; the input must be ``input_shape``'s H x W.

:func:`raw_parity` checks the folded model on raw pixels against the original artifact fed the
same pixels preprocessed in numpy, and both against the labels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import Preprocessing
from edgecompress.errors import ExportError

RAW_INPUT = "pixels"
LUMA = (0.299, 0.587, 0.114)  # as data.transforms: the weights Pillow's convert("L") uses


@dataclasses.dataclass(frozen=True)
class RawArtifact:
    path: str
    source: str  # the artifact it was folded from
    input_shape: tuple[int, int, int, int]  # (1, H, W, 3) uint8 NHWC
    size_bytes: int
    agreement: float  # top-1 agreement with the source artifact on the same images (%)
    acc: float  # accuracy on the labels (%), raw pixels in
    source_acc: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fold_preprocessing(src: str | Path, pre: Preprocessing, out: str | Path, input_name: str = RAW_INPUT) -> Path:
    """Write ``out``: the ONNX model ``src`` with ``pre`` folded in, taking uint8 NHWC RGB as
    ``input_name``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ExportError(f"{src}: folding the preprocessing needs one image input, found {len(inputs)}")
    old = inputs[0].name
    c, h, w = pre.input_shape
    dims = inputs[0].type.tensor_type.shape.dim
    batch: int | str = dims[0].dim_value if dims and dims[0].dim_value > 0 else (dims[0].dim_param or "N")
    for node in g.node:  # the graph now reads the normalized tensor, whatever the input is called
        node.input[:] = ["pp_normalized" if i == old else i for i in node.input]
    nodes = [
        helper.make_node("Cast", [input_name], ["pp_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pp_float"], ["pp_nchw"], perm=[0, 3, 1, 2]),
    ]
    last = "pp_nchw"
    consts = []
    if pre.channel_order == "bgr" and c == 3:
        consts.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "pp_bgr_idx"))
        nodes.append(helper.make_node("Gather", [last, "pp_bgr_idx"], ["pp_ordered"], axis=1))
        last = "pp_ordered"
    if c == 1:
        consts.append(numpy_helper.from_array(np.array(LUMA, np.float32).reshape(1, 3, 1, 1), "pp_luma"))
        nodes.append(helper.make_node("Conv", [last, "pp_luma"], ["pp_gray"]))
        last = "pp_gray"
    mean, std = np.array(pre.mean, np.float32), np.array(pre.std, np.float32)
    consts.append(numpy_helper.from_array((pre.pixel_scale / std).astype(np.float32).reshape(1, c, 1, 1), "pp_mul"))
    consts.append(numpy_helper.from_array((-mean / std).astype(np.float32).reshape(1, c, 1, 1), "pp_add"))
    nodes += [helper.make_node("Mul", [last, "pp_mul"], ["pp_scaled"]), helper.make_node("Add", ["pp_scaled", "pp_add"], ["pp_normalized"])]
    g.input.remove(inputs[0])
    g.input.insert(0, helper.make_tensor_value_info(input_name, TensorProto.UINT8, [batch, h, w, 3]))
    g.initializer.extend(consts)
    for i, n in enumerate(nodes):
        g.node.insert(i, n)
    onnx.checker.check_model(model)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


def raw_pixels(source: Any, indices: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB frames at the input size, as a camera app would pass them."""
    import torch

    from edgecompress.data.transforms import convert_channels, resize

    frames = []
    for j in indices:
        x = torch.as_tensor(np.asarray(source.image(int(j)))).to(torch.float32)
        x = resize(convert_channels(x, 3), (pre.input_shape[1], pre.input_shape[2]), pre.resize)
        frames.append(x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return np.stack(frames)


def _preprocess(frames: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """What the app would do without folding (float NCHW, normalized), in numpy."""
    x = frames.astype(np.float32).transpose(0, 3, 1, 2)
    if pre.channel_order == "bgr" and pre.input_shape[0] == 3:
        x = x[:, ::-1]
    if pre.input_shape[0] == 1:
        x = (x * np.array(LUMA, np.float32).reshape(1, 3, 1, 1)).sum(1, keepdims=True)
    mean, std = np.array(pre.mean, np.float32).reshape(1, -1, 1, 1), np.array(pre.std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x * pre.pixel_scale - mean) / std, dtype=np.float32)


def _run_raw(path: Path, frames: np.ndarray) -> np.ndarray:
    """Logits of a raw-input model (ONNX or TFLite) on uint8 NHWC frames, one frame per call."""
    if path.suffix == ".tflite":
        from edgecompress.export.parity import load_interpreter

        interp = load_interpreter(path)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        rows = []
        for i in range(len(frames)):
            interp.set_tensor(inp["index"], frames[i : i + 1].astype(inp["dtype"]))
            interp.invoke()
            rows.append(interp.get_tensor(out["index"]).astype(np.float32).reshape(1, -1))
        return np.concatenate(rows)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    fixed = sess.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) and fixed > 0 else 64
    return np.concatenate([sess.run(None, {name: frames[i : i + step]})[0] for i in range(0, len(frames), step)])


def raw_parity(src: Path, raw: Path, pre: Preprocessing, frames: np.ndarray, labels: np.ndarray, src_format: str = "onnx",
               layout: str = "nhwc") -> RawArtifact:
    """Top-1 agreement of the folded model on raw frames with the source artifact on the same
    frames preprocessed in numpy (through its own engine), and both accuracies."""
    from edgecompress.export.formats import run as run_artifact

    ref = np.asarray(run_artifact(src_format, src, _preprocess(frames, pre), layout)).argmax(1)
    got = _run_raw(raw, frames).argmax(1)
    return RawArtifact(
        path=str(raw), source=str(src), input_shape=(1, pre.input_shape[1], pre.input_shape[2], 3),
        size_bytes=raw.stat().st_size, agreement=round(float((ref == got).mean() * 100), 2),
        acc=round(float((got == labels).mean() * 100), 2), source_acc=round(float((ref == labels).mean() * 100), 2),
        samples=len(frames),
    )


def raw_tflite(model: Any, pre: Preprocessing, out: Path, *, opset: int = 17, timeout_s: float = 900.0) -> Path:
    """An fp32 ``.tflite`` of ``model`` taking uint8 NHWC RGB frames: its ONNX graph with the
    preprocessing folded in, converted by onnx2tf with the input kept as declared (NHWC).

    Full-int8 is not offered: onnx2tf's calibrator feeds float data, which a uint8 input refuses.
    """
    import shutil
    import tempfile

    from edgecompress.export.context import INPUT_NAME
    from edgecompress.export.onnx_recipes import torch_to_onnx
    from edgecompress.export.tflite_recipes import run_onnx2tf

    # The prefix the next build reaps if this is interrupted (export/worker.py).
    work = Path(tempfile.mkdtemp(prefix=".export-work-raw-", dir=out.parent))
    try:
        torch_to_onnx(model.eval(), pre.input_shape, work / "student.onnx", opset=opset, dynamo=False)
        folded = fold_preprocessing(work / "student.onnx", pre, work / "raw.onnx", input_name=INPUT_NAME)
        h, w = pre.input_shape[1:]
        sample = np.full((1, h, w, 3), 128.0, np.float32)  # onnx2tf's own layout check feeds it
        converted = run_onnx2tf(folded, work / "convert", sample, layout="nchw", integer=False, dynamic=False,
                                io_dtype="float32", timeout_s=timeout_s, log_path=work / "convert.log")
        built = next(converted.glob("*_float32.tflite"), None)
        if built is None:
            raise ExportError(f"export: onnx2tf wrote no fp32 .tflite for the raw-input model (log: {work / 'convert.log'})")
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(built, tmp)
        tmp.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def raw_input_artifacts(artifacts: list[Any], task: Any, model: Any, layout: str) -> list[RawArtifact]:
    """``build --raw-input``: every ONNX artifact again with the preprocessing folded in, and for
    TFLite an fp32 ``.tflite`` taking frames; each checked on the validation split's raw frames
    against the artifact it stands for."""
    pre = task.preprocessing
    val = task.val
    frames = raw_pixels(val.source, val.indices, pre)
    labels = np.asarray(val.source.labels[val.indices])
    rows = []
    for art in artifacts:
        src = Path(art.path)
        if art.format == "onnx":
            raw = fold_preprocessing(src, pre, src.with_name(f"{src.stem}_raw_uint8.onnx"))
        elif art.format == "tflite" and art.precision == "fp32":
            raw = raw_tflite(model, pre, src.with_name("model_fp32_raw_uint8.tflite"))
        else:
            continue
        rows.append(raw_parity(src, raw, pre, frames, labels, art.format, layout))
    return rows
