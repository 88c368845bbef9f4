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


def fold_preprocessing(src: str | Path, pre: Preprocessing, out: str | Path) -> Path:
    """Write ``out``: the ONNX model ``src`` with ``pre`` folded in, taking uint8 NHWC RGB."""
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
    nodes = [
        helper.make_node("Cast", [RAW_INPUT], ["pp_float"], to=TensorProto.FLOAT),
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
    nodes += [helper.make_node("Mul", [last, "pp_mul"], ["pp_scaled"]), helper.make_node("Add", ["pp_scaled", "pp_add"], [old])]
    g.input.remove(inputs[0])
    g.input.insert(0, helper.make_tensor_value_info(RAW_INPUT, TensorProto.UINT8, [batch, h, w, 3]))
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


def raw_parity(src: Path, raw: Path, pre: Preprocessing, frames: np.ndarray, labels: np.ndarray) -> RawArtifact:
    """Top-1 agreement of the folded model on raw frames with the source model on the same
    frames preprocessed in numpy, and both accuracies."""
    import onnxruntime as ort

    def run(path: Path, x: np.ndarray) -> np.ndarray:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        fixed = sess.get_inputs()[0].shape[0]
        step = fixed if isinstance(fixed, int) and fixed > 0 else 64
        return np.concatenate([sess.run(None, {name: x[i : i + step]})[0] for i in range(0, len(x), step)])

    ref = run(src, _preprocess(frames, pre)).argmax(1)
    got = run(raw, frames).argmax(1)
    return RawArtifact(
        path=str(raw), source=str(src), input_shape=(1, pre.input_shape[1], pre.input_shape[2], 3),
        size_bytes=raw.stat().st_size, agreement=round(float((ref == got).mean() * 100), 2),
        acc=round(float((got == labels).mean() * 100), 2), source_acc=round(float((ref == labels).mean() * 100), 2),
        samples=len(frames),
    )
