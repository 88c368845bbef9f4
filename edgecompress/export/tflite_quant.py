"""TFLite full-int8: the accuracy-aware fallback when plain PTQ misses the gate.

What onnx2tf 1.29 / the TFLite converter let us change is narrow: the converter's calibrator
has one range setting (min/max of the representative data), per-tensor weights only ever lose
accuracy against per-channel, and ``quant_norm_mean/std`` only rescale the input. So the steps
here are **more calibration images** (a second onnx2tf run calibrated on all
``calibration_pool_size`` images), then a **float head**: onnx2tf's saved model re-quantized by
the TFLite converter with its fully connected layers kept in float (``QuantizationDebugger``'s
``denylisted_ops``, in a child process: ``_tflite_mixed_worker.py``), which gives float logits
like ONNX's float-logits step but also float32 model I/O (that converter path has no int8 I/O);
and, last, a **quantization-aware fine-tune** of the student (``export/qat.py``, TFLite's 8-bit
weight grid) converted by a third onnx2tf run. The converter has no percentile / entropy range
setting; a per-layer sensitivity ranking from the debugger's layer statistics was not useful
(each layer's error is ~1/sqrt(12) of its step: uniform rounding), so only op types are kept
in float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecompress.errors import ExportError
from edgecompress.export.context import ExportContext
from edgecompress.export.onnx_recipes import fp32_onnx
from edgecompress.export.registry import Built
from edgecompress.export.tflite_recipes import full_int8_from, onnx2tf_outputs, run_worker, to_layout
from edgecompress.export.tuning import Trial, register_qat, register_tuner


@register_tuner("tflite", "full-int8")
def _tune_tflite_full_int8(ctx: ExportContext, trial: Trial) -> None:
    pool = ctx.pool
    if len(pool) > len(ctx.calib_x):
        trial.run(
            "calibration",
            f"minmax ranges from {len(pool)} calibration images (second onnx2tf run)",
            {},
            lambda: full_int8_from(ctx, onnx2tf_outputs(ctx, pool, name="onnx2tf_pool"), len(pool)),
        )
        if trial.passed:
            return
    share = _float_share(ctx, ("Gemm", "MatMul"))
    if share <= ctx.config.max_float_share:
        desc = f"fully connected layers in float ({share:.1%} of weights), float32 I/O, {len(pool)} calibration images"
        trial.run("mixed-precision", desc, {}, lambda: float_head(ctx, pool), float_share=share)
        if trial.passed:
            return
    if ctx.config.qat_steps:
        desc = f"quantization-aware fine-tune, {ctx.config.qat_steps} steps (another onnx2tf run, {len(ctx.calib_x)} calibration images)"
        trial.run("qat", desc, {}, lambda: _qat_full_int8(ctx, None))


FLOAT_OPS = ("FULLY_CONNECTED",)


def _float_share(ctx: ExportContext, onnx_ops: tuple[str, ...]) -> float:
    from edgecompress.export.onnx_quant import weighted_nodes

    path = fp32_onnx(ctx)
    return sum(weighted_nodes(path, onnx_ops).values()) / max(sum(weighted_nodes(path).values()), 1)


def float_head(ctx: ExportContext, images: np.ndarray) -> Built:
    """The full-int8 model with ``FLOAT_OPS`` in float, from onnx2tf's saved model."""
    folder, _ = onnx2tf_outputs(ctx)
    if not (folder / "saved_model.pb").is_file():
        raise ExportError(f"export: onnx2tf wrote no saved model in {folder}; cannot keep layers in float")
    work = (ctx.work_dir / "tflite_float_head").resolve()
    work.mkdir(parents=True, exist_ok=True)
    calib, out, log = work / "calibration.npy", work / "float_head.tflite", work / "float_head.log"
    np.save(calib, to_layout(images, ctx.config.layout))
    request = {"saved_model": str(folder.resolve()), "calib": str(calib), "out": str(out), "float_ops": list(FLOAT_OPS)}
    code, _text = run_worker("edgecompress.export._tflite_mixed_worker", request, work, log,
                             ctx.config.converter_timeout_s, "the TFLite converter")
    if code != 0 or not out.is_file():
        raise ExportError(f"export: the TFLite converter could not keep {', '.join(FLOAT_OPS)} in float "
                          f"(exit code {code}; log: {log})")
    settings = {"calibrate_method": "minmax", "images": len(images), "per_channel": True, "io": "float32",
                "float_ops": list(FLOAT_OPS), "converter": "TFLiteConverter.from_saved_model, QuantizationDebugger denylisted_ops"}
    return Built(out, log, settings)


@register_qat("tflite", "full-int8")
def _qat_full_int8(ctx: ExportContext, base: dict[str, Any] | None) -> Built:
    from edgecompress.export.qat import artifact_parity, qat_context

    # Calibrated on the PTQ calibration subset, not the whole pool: the converter's calibrator
    # runs every image through each of its int8 conversions, and 1024 images made this second
    # onnx2tf run ~10 s slower than the first (QAT cost target: <= 20% of distillation). The
    # fine-tune observes its ranges on the same images, so the file follows the simulation.
    calib = len(ctx.calib_x)
    qctx, record = qat_context(ctx, qmax=127, calib_images=calib)  # TFLite int8 weights: symmetric, [-127, 127]
    built = full_int8_from(qctx, onnx2tf_outputs(qctx, qctx.calib_x, name="onnx2tf_qat"), calib)
    parity = artifact_parity(ctx, qctx, "tflite", built.path, calib)
    return Built(built.path, built.log, {**built.settings, **record, **parity})
