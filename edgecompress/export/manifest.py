"""What an exported file is: op counts and the input spec a device app needs to feed it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgecompress.artifacts import InputSpec, Preprocessing
from edgecompress.export.formats import get_format
from edgecompress.export.parity import load_interpreter


def onnx_op_counts(path: Path) -> dict[str, int]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(sorted(Counter(node.op_type for node in graph.node).items()))


def tflite_op_counts(path: Path) -> dict[str, int]:
    interp = load_interpreter(path, delegate=False)  # XNNPACK would fold ops into DELEGATE nodes
    # _get_ops_details is the interpreter's only op listing; it is stable across TF 2.x/LiteRT.
    ops = interp._get_ops_details()
    return dict(sorted(Counter(op["op_name"].upper() for op in ops).items()))


def op_counts(path: Path, fmt: str) -> dict[str, int]:
    """Op type -> count; ``Transpose``/``TRANSPOSE`` counts show layout conversions left in."""
    return onnx_op_counts(path) if get_format(fmt).engine == "onnx" else tflite_op_counts(path)


def onnx_input_spec(path: Path, preprocessing: Preprocessing) -> InputSpec:
    import onnx

    inp = onnx.load(str(path), load_external_data=False).graph.input[0]
    dims = tuple(d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim)
    # The batch axis is dynamic in our ONNX files; the spec records batch 1, what devices run.
    return InputSpec(name=inp.name, shape=dims, dtype="float32", layout="NCHW", preprocessing=preprocessing)


def tflite_input_spec(path: Path, preprocessing: Preprocessing, layout: str) -> InputSpec:
    interp = load_interpreter(path)
    inp = interp.get_input_details()[0]
    scale, zero_point = inp["quantization"]
    quantized = np.issubdtype(inp["dtype"], np.integer)
    return InputSpec(
        name=str(inp["name"]),
        shape=tuple(int(d) for d in inp["shape"]),
        dtype=np.dtype(inp["dtype"]).name,
        layout=layout.upper(),
        preprocessing=preprocessing,
        quant_scale=float(scale) if quantized else None,
        quant_zero_point=int(zero_point) if quantized else None,
    )


def input_spec(path: Path, fmt: str, preprocessing: Preprocessing, layout: str) -> InputSpec:
    if get_format(fmt).engine == "onnx":
        return onnx_input_spec(path, preprocessing)
    return tflite_input_spec(path, preprocessing, layout)
