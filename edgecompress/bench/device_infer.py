#!/usr/bin/env python3
"""edgecompress device-side inference: run a model over given inputs, print its outputs.

Pushed beside ``device_runner.py`` (whose runtime loading, environment and event helpers it
imports: both sit in one folder on the device) so that the parity gate can run on the device's
own kernels -- XNNPACK's ARM NEON / SDOT int8 paths are different code from the x86 ones.
Needs python3, numpy and one runtime, never edgecompress.

    python3 device_infer.py MODEL INPUTS.npy [--threads N] [--runtime NAME]

INPUTS.npy is float32 in the model's layout (NCHW or NHWC), one row per sample. Integer model
inputs are quantized with the input tensor's scale and zero point and integer outputs
dequantized, exactly as a device app does. Prints ``start`` then ``outputs`` (float32 rows,
base64) as ``@@edgecompress`` events; exit codes as device_runner.py's.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time

from device_runner import (  # type: ignore[import-not-found]  # the sibling file on the device
    DISTRIBUTIONS,
    EXIT_BAD_INPUT,
    EXIT_RUNTIME_FAILED,
    RUNTIME_LABEL,
    cpu_model,
    dist_version,
    emit,
    emulation,
    fail,
    pick_runtime,
)


def onnx_runner(ort, np, model, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x.astype(np.float32)})[0]

    return run


def tflite_runner(interpreter_mod, np, model, threads):
    interp = interpreter_mod.Interpreter(model_path=model, num_threads=threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]

    def run(x):
        if np.issubdtype(inp["dtype"], np.integer):
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / in_scale + in_zp), info.min, info.max)
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if np.issubdtype(out["dtype"], np.integer):
            y = (y - out_zp) * out_scale
        return y

    return run


def main(argv=None):
    p = argparse.ArgumentParser(prog="device_infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "ai_edge_litert", "tflite_runtime"])
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    for path in (args.model, args.inputs):
        if not os.path.isfile(path):
            fail(EXIT_BAD_INPUT, f"{path}: file not found")
    import numpy as np

    name, mod = pick_runtime(args.model, args.runtime)
    emit("start", runtime=RUNTIME_LABEL[name], runtime_version=dist_version(DISTRIBUTIONS[name], mod),
         environment={"cpu_model": cpu_model(), "emulated": emulation(), "numpy": np.__version__,
                      "qemu_cpu": os.environ.get("QEMU_CPU", "")})  # fmt: skip
    try:
        x = np.load(args.inputs, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        fail(EXIT_BAD_INPUT, f"{args.inputs}: not a numpy array file ({exc})")
    t0 = time.perf_counter()
    try:
        run = (onnx_runner if name == "onnxruntime" else tflite_runner)(mod, np, args.model, args.threads)
        # One sample per call, as the device runs them (and as the host-side parity gate does).
        y = np.concatenate([run(x[i : i + 1]).reshape(1, -1) for i in range(len(x))]).astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - any runtime failure is one line, never a traceback
        fail(EXIT_RUNTIME_FAILED, f"{name} failed on {args.model}: {type(exc).__name__}: {exc}")
    emit("outputs", shape=list(y.shape), dtype="float32", data=base64.b64encode(y.tobytes()).decode("ascii"),
         seconds=time.perf_counter() - t0)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
