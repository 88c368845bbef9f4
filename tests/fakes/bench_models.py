"""Tiny real models for the benchmark tests: built with onnx.helper and TensorFlow's converter.

The TFLite model is converted in a subprocess so that the test process never imports
TensorFlow (seconds of import time and a few hundred MB that would blur memory figures).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def make_onnx(path: Path, channels: int = 8, size: int = 32) -> Path:
    """Conv 3x3 -> Relu -> GlobalAveragePool -> Flatten -> Gemm(10): a real, runnable CNN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(channels, np.float32), "b")
    fc = numpy_helper.from_array(rng.standard_normal((10, channels)).astype(np.float32), "fc")
    fcb = numpy_helper.from_array(np.zeros(10, np.float32), "fcb")
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [w, b, fc, fcb],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


_TFLITE_SCRIPT = r"""
import sys
import tensorflow as tf

class Tiny(tf.Module):
    def __init__(self):
        g = tf.random.Generator.from_seed(0)
        self.w = tf.Variable(g.normal([3, 3, 3, 8]))
        self.fc = tf.Variable(g.normal([8, 10]))

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32)])
    def __call__(self, x):
        y = tf.nn.relu(tf.nn.conv2d(x, self.w, 1, "SAME"))
        return tf.matmul(tf.reduce_mean(y, axis=[1, 2]), self.fc)

m = Tiny()
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
open(sys.argv[1], "wb").write(conv.convert())
"""


def minimal_tflite() -> bytes:
    """The smallest structurally valid TFLite flatbuffer: a Model with one empty SubGraph. It
    passes edgecompress's pre-run check; no runtime could execute it."""
    import struct

    return b"".join([
        struct.pack("<I", 20), b"TFL3",  # root table at 20; file identifier
        struct.pack("<HHHHH", 10, 8, 0, 0, 4), b"\x00\x00",  # Model vtable: subgraphs at +4
        struct.pack("<iI", 12, 4),  # Model table (vtable 12 back); subgraphs vector 4 ahead
        struct.pack("<II", 1, 8),  # vector of 1; SubGraph table 8 ahead
        struct.pack("<HH", 4, 4),  # SubGraph vtable: no fields
        struct.pack("<i", 4),  # SubGraph table
    ])  # fmt: skip


def make_tflite(path: Path) -> Path:
    """A float32 TFLite CNN from TensorFlow's own converter (about 10 s, once per session)."""
    done = subprocess.run([sys.executable, "-c", _TFLITE_SCRIPT, str(path)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"TFLite conversion failed: {done.stderr[-2000:]}")
    return path


# --------------------------------------------------------------------------- shared fixtures


def cached(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Path]) -> Path:
    # One file per test session, shared by every module that imports these fixtures.
    path = tmp_path_factory.getbasetemp() / "bench-models" / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path)
    return path


def write_script(path: Path, body: str) -> str:
    """An executable /bin/sh script, used as a stand-in 'python' on a device."""
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def python_without_runtimes(folder: Path) -> str:
    """A python that has numpy but where onnxruntime, ai_edge_litert and tflite_runtime fail
    to import: a device on which the user has not installed a runtime yet."""
    shadow = folder / "shadow"
    for mod in ("onnxruntime", "ai_edge_litert", "tflite_runtime"):
        (shadow / mod).mkdir(parents=True, exist_ok=True)
        (shadow / mod / "__init__.py").write_text(f'raise ImportError("No module named {mod}")\n')
    return write_script(folder / "python-no-runtime", f'PYTHONPATH={shadow} exec {sys.executable} "$@"')


def has_tflite_stack() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tensorflow"))
