"""Subprocess entry: re-quantize onnx2tf's saved model with some op types kept in float.

    python -m edgecompress.export._tflite_mixed_worker request.json

onnx2tf 1.29 writes a TensorFlow saved model next to its .tflite files. The TFLite converter
(``TFLiteConverter.from_saved_model``) quantizes it again from our calibration images, and its
``QuantizationDebugger`` accepts ``denylisted_ops``: those ops stay float, with Dequantize /
Quantize around them, everything else int8 (selective quantization). The debugger's model has
float32 input and output (no int8 I/O option on that path). Offline, ~1 s for a small CNN.
Same isolation as the onnx2tf worker: a child process, network refused before TF is imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgecompress.export._onnx2tf_worker import block_network, exit_with_parent


def main(argv: list[str]) -> int:
    exit_with_parent()
    block_network()
    req = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    import numpy as np
    import tensorflow as tf

    calib = np.load(req["calib"])

    def representative() -> object:
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_saved_model(req["saved_model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(req["float_ops"]))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                         debug_options=options)
    Path(req["out"]).write_bytes(debugger.get_nondebug_quantized_model())
    print(f"edgecompress: wrote {req['out']} with {req['float_ops']} in float", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
