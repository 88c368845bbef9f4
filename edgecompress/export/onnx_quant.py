"""ONNX int8: static QDQ quantization, and its accuracy-aware fallback when the gate misses.

Plain PTQ: ``quantize_static``, QDQ, per-channel int8 weights, int8 activations, MinMax ranges
from ``calibration_size`` images. When that misses the parity gate the tuner tries, in order:

0. **Float logits**: the classifier's output left unquantized (no size cost; int8 logits with
   a per-tensor step of ~1% of their range swap near-tied classes).
1. **Calibration** (float logits kept): all ``calibration_pool_size`` images with MinMax, then 99.999-percentile
   ranges, then entropy (KL) ranges: ONNX Runtime's calibrators. Outliers widen MinMax ranges
   and waste int8 levels; percentile / entropy clip them.
2. **Sensitivity**: with the best calibration so far, each weighted layer (Conv, Gemm, MatMul)
   is quantized alone and the logits' SNR against the float model is measured on calibration
   images (not the parity set): the lower the SNR, the more sensitive the layer.
3. **Mixed precision**: the 1, 2, 4, ... most sensitive layers kept in float
   (``nodes_to_exclude``) while they hold at most ``max_float_share`` of the weights.
4. **QAT**: a quantization-aware fine-tune of the student (``export/qat.py``), all int8 again.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from edgecompress.errors import ExportError
from edgecompress.export.context import INPUT_NAME, ExportContext
from edgecompress.export.cpu_int8 import choose_weight_grid
from edgecompress.export.onnx_recipes import _first_line, fp32_onnx
from edgecompress.export.parity import run_onnx
from edgecompress.export.registry import Built, register_recipe
from edgecompress.export.tuning import Trial, register_qat, register_tuner

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
SENSITIVITY_IMAGES = 256  # enough for a stable SNR; the calibration subset, never the parity set
_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


class _CalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds the calibration subset to onnxruntime's calibrator in small batches."""

    def __init__(self, x: np.ndarray, batch: int = 32) -> None:
        self._batches = iter([x[i : i + batch] for i in range(0, len(x), batch)])

    @staticmethod
    def usable(x: np.ndarray, batch: int = 32) -> np.ndarray:
        """Whole batches only: ORT's histogram calibrators (percentile, entropy) stack every
        batch's outputs into one array and fail on a shorter last batch."""
        batch = min(batch, len(x))
        return x[: len(x) // batch * batch]

    def get_next(self) -> dict[str, np.ndarray] | None:
        nxt = next(self._batches, None)
        return None if nxt is None else {INPUT_NAME: np.ascontiguousarray(nxt, dtype=np.float32)}


def _preprocessed(ctx: ExportContext) -> Path:
    """Shape inference + ORT graph fusions, once: the calibrator then sees fused Conv+activation
    nodes and places fewer Q/DQ pairs (the ORT docs' advice)."""

    def build() -> Path:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = ctx.work_dir / "int8_pre.onnx"
        quant_pre_process(str(fp32_onnx(ctx)), str(pre), skip_symbolic_shape=True)
        return pre

    return ctx.once("onnx_int8_pre", build)


def quantize(ctx: ExportContext, name: str, *, method: str = "minmax", images: int | None = None,
             exclude: tuple[str, ...] = (), only: tuple[str, ...] = (), float_logits: bool = False) -> Built:
    """One static QDQ quantization of the fp32 graph into ``work_dir/name``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calib = _CalibrationReader.usable(ctx.pool[: images or len(ctx.calib_x)])
    out = ctx.work_dir / name
    grid = choose_weight_grid(ctx.config.onnx_reduce_range)
    extra: dict[str, Any] = {"CalibPercentile": 99.999} if method == "percentile" else {}
    if float_logits:  # the head's output left unquantized: see _logits_op
        extra["OpTypesToExcludeOutputQuantization"] = [_logits_op(_preprocessed(ctx))]
    try:
        # Static QDQ, asymmetric 8-bit activations and per-channel symmetric int8 weights: the
        # same grid as TFLite full-int8 (a uint8 tensor with zero point z is the int8 one with
        # z - 128), so one calibration set means the same thing in both formats.
        # uint8 activations: ORT's x86 graph fusions then turn every Q/DQ-wrapped Conv, Add,
        # pool and Gemm into QLinear* kernels (one Quantize at the input, one Dequantize at the
        # output); with int8 activations a residual Add and two Convs of a MobileNet student
        # stayed float between extra Q/DQ pairs (measured, docs/export.md).
        # Weight bits by the CPU (cpu_int8.py): 7-bit only where ORT's x86 kernels saturate.
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibration chatter to stdout
            quantize_static(
                str(_preprocessed(ctx)), str(out), _CalibrationReader(calib),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                reduce_range=grid.reduce_range,
                calibrate_method=getattr(CalibrationMethod, _METHODS[method]),
                nodes_to_exclude=list(exclude) or None, nodes_to_quantize=list(only) or None, extra_options=extra,
            )
    except Exception as exc:  # ORT raises bare Exceptions naming the node
        raise ExportError(f"export: ONNX int8 quantization failed: {_first_line(exc)}") from None
    settings = {"calibrate_method": method, "images": len(calib), "per_channel": True, "activations": "uint8 asymmetric",
                **grid.settings(), "float_nodes": list(exclude), "float_logits": float_logits}
    return Built(out, settings=settings)


@register_recipe("onnx", "int8", filename="model_int8.onnx", numeric="int8")
def _onnx_int8(ctx: ExportContext) -> Built:
    return quantize(ctx, "int8.onnx")


def _logits_op(path: Path) -> str:
    """Op type of the node that writes the model's output (the classifier head, usually Gemm).

    Plain QDQ quantizes the logits themselves to int8, per tensor: with a logit range of +-10
    the step is ~0.08, and two classes closer than that swap places. Excluding output
    quantization for this op type keeps the logits float at the cost of one DequantizeLinear
    less; the head's weights and input stay int8. (Other nodes of the same type, rare in a
    CNN, also keep float outputs.)"""
    graph = onnx.load(str(path)).graph
    out = graph.output[0].name
    return next((n.op_type for n in graph.node if out in n.output), "Gemm")


def weighted_nodes(path: Path, ops: tuple[str, ...] = WEIGHTED_OPS) -> dict[str, int]:
    """Quantizable layers (of ``ops`` types) that carry weights -> their parameter count, in graph order."""
    graph = onnx.load(str(path)).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    return {n.name: sum(sizes.get(i, 0) for i in n.input) for n in graph.node if n.op_type in ops and n.name}


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of the logits, in dB (higher is closer)."""
    noise = float(np.sum((candidate.astype(np.float64) - reference) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


def sensitivity(ctx: ExportContext, settings: dict[str, Any], nodes: list[str]) -> dict[str, float]:
    """Logit SNR (dB) against the float model with only that node quantized (calibration images
    only). Lower is more sensitive. Quantizing one layer at a time keeps the scores independent:
    measured the other way round (all quantized, one kept float) the worst layer's noise
    drowns every other layer's score."""
    x = ctx.calib_x[:SENSITIVITY_IMAGES]
    ref = run_onnx(fp32_onnx(ctx), x).astype(np.float64)
    snr = {}
    # The ranking needs the method's range setting, not the last bit of its precision: one
    # calibration per layer on SENSITIVITY_IMAGES images keeps this step a few seconds.
    images = min(settings["images"], SENSITIVITY_IMAGES)
    for i, node in enumerate(nodes):
        built = quantize(ctx, f"sens_{i}.onnx", method=settings["calibrate_method"], images=images, only=(node,),
                         float_logits=settings.get("float_logits", False))
        snr[node] = round(min(snr_db(ref, run_onnx(built.path, x)), 300.0), 2)  # inf (exact) -> 300 dB: JSON-safe
        built.path.unlink(missing_ok=True)
    return snr


@register_tuner("onnx", "int8")
def _tune_onnx_int8(ctx: ExportContext, trial: Trial) -> None:
    cfg = ctx.config
    pool = len(_CalibrationReader.usable(ctx.pool))
    # Float logits first: no size cost, and on near-tied students it is the largest single win.
    trial.run("float-logits", "classifier output (logits) kept in float, minmax ranges", {},
              lambda: quantize(ctx, "float_logits.onnx", float_logits=True))
    if trial.passed:
        return
    steps = [("minmax", pool)] if pool > len(ctx.calib_x) else []
    steps += [("percentile", pool), ("entropy", pool)]
    for method, images in steps:
        desc = f"{method} ranges from {images} calibration images, float logits"
        trial.run("calibration", desc, {}, lambda m=method, n=images: quantize(
            ctx, f"cal_{m}_{n}.onnx", method=m, images=n, float_logits=True))
        if trial.passed:
            return

    best = trial.best_settings
    params = weighted_nodes(_preprocessed(ctx))
    total = sum(params.values()) or 1
    snr = sensitivity(ctx, best, list(params))
    order = sorted(snr, key=lambda n: snr[n])
    top = {n: snr[n] for n in order[:10]}  # the manifest's sensitivity table: the 10 noisiest layers
    # Most sensitive first, skipping a layer that would break the size bound (a smaller, less
    # sensitive one after it may still fit); then try growing prefixes: 1, 2, 4, ... layers.
    keep_order: list[str] = []
    for n in order:
        if sum(params[m] for m in (*keep_order, n)) / total <= cfg.max_float_share:
            keep_order.append(n)
    sizes = sorted({min(2**i, len(keep_order)) for i in range(len(keep_order).bit_length() + 1)} - {0})
    for k in sizes:
        keep = tuple(keep_order[:k])
        share = sum(params[n] for n in keep) / total
        desc = f"{k} most sensitive layer(s) in float ({share:.1%} of weights), {best['calibrate_method']} ranges"
        trial.run("mixed-precision", desc, {"sensitivity_snr_db": top}, lambda keep=keep, k=k: quantize(
            ctx, f"mixed_{k}.onnx", method=best["calibrate_method"], images=best["images"], exclude=keep,
            float_logits=best.get("float_logits", False)),
            float_share=share)
        if trial.passed:
            return
    if cfg.qat_steps:
        desc = f"quantization-aware fine-tune, {cfg.qat_steps} steps, {best['calibrate_method']} ranges"
        trial.run("qat", desc, {}, lambda: _qat_int8(ctx, best))


@register_qat("onnx", "int8")
def _qat_int8(ctx: ExportContext, base: dict[str, Any] | None) -> Built:
    from edgecompress.export.qat import artifact_parity, qat_context

    base = base or {"calibrate_method": "minmax", "images": len(ctx.calib_x), "float_logits": True}
    qmax = 64 if choose_weight_grid(ctx.config.onnx_reduce_range).reduce_range else 127  # ORT's symmetric weight grid
    qctx, record = qat_context(ctx, qmax, calib_images=len(_CalibrationReader.usable(ctx.pool[: base["images"]])))
    built = quantize(qctx, "qat_int8.onnx", method=base["calibrate_method"], images=base["images"],
                     float_logits=base.get("float_logits", False))
    parity = artifact_parity(ctx, qctx, "onnx", built.path, built.settings["images"])
    return Built(built.path, settings={**built.settings, **record, **parity})
