"""TFLite full-int8: the accuracy-aware fallback when plain PTQ misses the gate.

What onnx2tf 1.29 / the TFLite converter let us change is narrow: the converter's calibrator
has one range setting (min/max of the representative data), per-tensor weights only ever lose
accuracy against per-channel, and ``quant_norm_mean/std`` only rescale the input. So the one
step here is **more calibration images**: a second onnx2tf run calibrated on all
``calibration_pool_size`` images. Percentile / entropy ranges and layers kept in float need the
converter's QuantizationDebugger (denylisted nodes) on onnx2tf's saved model: not done yet,
see docs/export.md.
"""

from __future__ import annotations

from edgecompress.export.context import ExportContext
from edgecompress.export.tflite_recipes import full_int8_from, onnx2tf_outputs
from edgecompress.export.tuning import Trial, register_tuner


@register_tuner("tflite", "full-int8")
def _tune_tflite_full_int8(ctx: ExportContext, trial: Trial) -> None:
    pool = ctx.pool
    if len(pool) <= len(ctx.calib_x):
        return  # nothing more to calibrate with; the manifest shows plain PTQ as the only attempt
    trial.run(
        "calibration",
        f"minmax ranges from {len(pool)} calibration images (second onnx2tf run)",
        {},
        lambda: full_int8_from(ctx, onnx2tf_outputs(ctx, pool, name="onnx2tf_pool"), len(pool)),
    )
