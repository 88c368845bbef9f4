"""A toy export format: ONNX Runtime's own basic-optimized graph of the student. The whole
change is this file: the format, its recipe, and a runtime that deploys it."""

from __future__ import annotations

from edgecompress.export.formats import ArtifactFormat, register_format
from edgecompress.export.onnx_recipes import fp32_onnx
from edgecompress.export.registry import Built, register_recipe
from edgecompress.runtimes import RuntimeProvider, register_runtime

register_format(ArtifactFormat("onnx-opt", ".onnx", engine="onnx"))
register_runtime(RuntimeProvider("toy-ort-opt", "onnx-opt", {"fp32": "fp32"}, 8.0, ("local",)))


@register_recipe("onnx-opt", "fp32", filename="model_fp32_opt.onnx", numeric="float32")
def onnx_opt_fp32(ctx):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    out = ctx.work_dir / "model_fp32_opt.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # standard ops only
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(fp32_onnx(ctx)), opts, providers=["CPUExecutionProvider"])
    return Built(out)
