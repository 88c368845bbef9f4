"""TFLite full-int8: the accuracy-aware fallback when plain PTQ misses the gate.

What onnx2tf 1.29 / the TFLite converter let us change is narrow: the converter's calibrator
has one range setting (min/max of the representative data), per-tensor weights only ever lose
accuracy against per-channel, and ``quant_norm_mean/std`` only rescale the input. So the steps
here are **more calibration images** (a second onnx2tf run calibrated on all
``calibration_pool_size`` images) and, last, a **quantization-aware fine-tune** of the student
(``export/qat.py``, TFLite's 8-bit weight grid) converted by a third onnx2tf run. Percentile /
entropy ranges and layers kept in float need the converter's QuantizationDebugger (denylisted
nodes) on onnx2tf's saved model: not done yet, see docs/export.md. The int8 output tensor of a
full-int8 model is part of the deployed contract, so logits cannot stay float here.
"""

from __future__ import annotations

from edgecompress.export.context import ExportContext
from edgecompress.export.registry import Built
from edgecompress.export.tflite_recipes import full_int8_from, onnx2tf_outputs
from edgecompress.export.tuning import Trial, register_tuner


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
    if ctx.config.qat_steps:
        desc = f"quantization-aware fine-tune, {ctx.config.qat_steps} steps (another onnx2tf run)"
        trial.run("qat", desc, {}, lambda: _qat_full_int8(ctx))


def _qat_full_int8(ctx: ExportContext) -> Built:
    from edgecompress.export.qat import qat_context

    qctx, record = qat_context(ctx, qmax=127)  # TFLite int8 weights: symmetric, [-127, 127]
    built = full_int8_from(qctx, onnx2tf_outputs(qctx, qctx.pool, name="onnx2tf_qat"), len(qctx.pool))
    return Built(built.path, built.log, {**built.settings, **record})
