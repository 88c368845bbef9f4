"""A toy device runtime: the whole change is this file (one register call)."""

from __future__ import annotations

from edgecompress.runtimes import RuntimeProvider, register_runtime

TOY = register_runtime(RuntimeProvider(
    "toy-ort", "onnx", {"fp32": "fp32"}, 1.5, ("local",), "ONNX Runtime under another name, with a 1.5 MB arena",
))
