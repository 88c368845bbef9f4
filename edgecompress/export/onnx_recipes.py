"""ONNX targets: fp32 (checked + simplified) and fp16; static int8 QDQ is in onnx_quant.py.

Exporter choice: ``torch.onnx.export(dynamo=False, opset_version=17)`` by default. Both
exporters match eager PyTorch to ~3e-6 on our students (RESEARCH.md), but the TorchScript one
exports a small CNN in ~0.15 s instead of seconds, folds BatchNorm, and names nodes after the
module path (``/features/3/conv/Conv``), which makes converter errors point at the user's
layer. ``ExportConfig(dynamo=True, opset=18)`` selects the torch.export-based exporter.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import onnx

from edgecompress.errors import ExportError
from edgecompress.export.context import INPUT_NAME, OUTPUT_NAME, ExportContext
from edgecompress.export.graph_rewrites import spatial_mean_to_global_pool
from edgecompress.export.registry import Built, register_recipe

_UNSUPPORTED_RE = re.compile(r"operator '([\w:.]+)'")


def torch_to_onnx(model: Any, input_shape: tuple[int, int, int], path: Path, *, opset: int, dynamo: bool) -> None:
    """Export ``model`` (NCHW float input, dynamic batch) to ``path`` and run the full checker."""
    import torch

    example = torch.zeros((1, *input_shape), dtype=torch.float32)
    kwargs: dict[str, Any] = {
        "input_names": [INPUT_NAME],
        "output_names": [OUTPUT_NAME],
        "opset_version": opset,
        "dynamo": dynamo,
    }
    if dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        kwargs["do_constant_folding"] = True
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter is deprecated upstream but still the faster, clearer one.
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), **kwargs)
    except Exception as exc:  # the exporters raise many unrelated types
        match = _UNSUPPORTED_RE.search(str(exc))
        if match:
            op = match.group(1)
            raise ExportError(
                f"export: ONNX opset {opset} has no conversion for op {op!r} at node {_find_torch_node(model, example, op)}; "
                "replace that layer or raise the opset"
            ) from None
        raise ExportError(f"export: torch.onnx.export failed: {_first_line(exc)}") from None
    proto = onnx.load(str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"export: the exported ONNX graph is invalid: {_first_line(exc)}") from None


def _find_torch_node(model: Any, example: Any, op: str) -> str:
    """Name the module and source line that used ``op``, from a trace of the model."""
    import torch

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            graph = torch.jit.trace(model, example, check_trace=False).inlined_graph
    except Exception:  # tracing itself can fail on exotic models; the op name alone still helps
        return "(unknown)"
    for node in graph.nodes():
        if node.kind() == op:
            # scopeName is the submodule path ("__module.features.3"); empty for the top module.
            scope = node.scopeName().replace("__module.", "") or type(model).__name__
            src = node.sourceRange().splitlines()[0].strip() if node.sourceRange() else ""
            return f"'{scope}'" + (f" ({Path(src).name})" if src else "")
    return "(unknown)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def simplify(src: Path, dst: Path) -> None:
    """onnxsim constant folding + dead-node removal; keep the original if it cannot verify."""
    import onnxsim

    proto = onnx.load(str(src))
    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception:  # onnxsim fails on some exotic graphs; the unsimplified one is still valid
        ok = False
    onnx.save(simplified if ok else proto, str(dst))


def fp32_onnx(ctx: ExportContext) -> Path:
    """The checked, simplified fp32 graph every other target starts from (built once)."""

    def build() -> Path:
        raw = ctx.work_dir / "raw_fp32.onnx"
        torch_to_onnx(ctx.model, ctx.input_shape, raw, opset=ctx.config.opset, dynamo=ctx.config.dynamo)
        proto = onnx.load(str(raw))
        if spatial_mean_to_global_pool(proto):  # exact; saves onnx2tf a feature-map Transpose
            onnx.save(proto, str(raw))
        out = ctx.work_dir / "base_fp32.onnx"
        if ctx.config.simplify:
            simplify(raw, out)
        else:
            out.write_bytes(raw.read_bytes())
        return out

    return ctx.once("onnx_fp32", build)


@register_recipe("onnx", "fp32", filename="model_fp32.onnx", numeric="float32")
def _onnx_fp32(ctx: ExportContext) -> Built:
    return Built(fp32_onnx(ctx))


@register_recipe("onnx", "fp16", filename="model_fp16.onnx", numeric="float16")
def _onnx_fp16(ctx: ExportContext) -> Built:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # float32 I/O keeps the same preprocessing and caller code for every precision; the
    # Cast at each end costs nothing next to the convolutions.
    proto = convert_float_to_float16(onnx.load(str(fp32_onnx(ctx))), keep_io_types=True)
    out = ctx.work_dir / "fp16.onnx"
    onnx.save(proto, str(out))
    return Built(out)
