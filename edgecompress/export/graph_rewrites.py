"""Exact ONNX graph rewrites that make the TFLite conversion cheaper on the device.

``x.mean((2, 3))`` (a spatial mean written by hand, common in user models and timm heads)
exports as ``ReduceMean(axes=[2, 3])``; onnx2tf keeps that op's NCHW axes by inserting a
TRANSPOSE of the whole feature map before it. ``GlobalAveragePool`` (what
``nn.AdaptiveAvgPool2d(1)`` exports) converts to a plain MEAN over H, W in NHWC. The two are
the same function, so we rewrite the first into the second (+ Flatten when keepdims=0).
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper


def _reduce_axes(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == "axes":  # opset <= 17: an attribute
            return list(attr.ints)
    if len(node.input) > 1 and node.input[1] in inits:  # opset >= 18: a constant input
        return [int(a) for a in numpy_helper.to_array(inits[node.input[1]]).ravel()]
    return None


def spatial_mean_to_global_pool(model: onnx.ModelProto) -> int:
    """Rewrite 4-D ``ReduceMean`` over axes {2, 3} in place; return how many were rewritten."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
        if vi.type.tensor_type.HasField("shape")
    }
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        axes = _reduce_axes(node, inits) if node.op_type == "ReduceMean" and node.domain in ("", "ai.onnx") else None
        rank = ranks.get(node.input[0]) if axes is not None else None
        if axes is None or rank != 4 or sorted(a % 4 for a in axes) != [2, 3]:
            new_nodes.append(node)
            continue
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        base = node.name or node.output[0]
        if keepdims:
            new_nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=base))
        else:
            pooled = f"{base}_pooled"
            new_nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=f"{base}_gap"))
            new_nodes.append(helper.make_node("Flatten", [pooled], list(node.output), name=base, axis=1))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(new_nodes)
        onnx.checker.check_model(model)
    return count
