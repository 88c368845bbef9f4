"""Exporter: PyTorch student -> ONNX (fp32, fp16, int8 QDQ) and TFLite (fp32, fp16,
dynamic-range int8, full-integer int8), each checked against eager PyTorch through its own
runtime (ONNX Runtime, the LiteRT interpreter).

    from edgecompress.export import ExportConfig, export, export_module
    arts = export("run/checkpoint.json", ExportConfig(formats=("onnx", "tflite")), "run/export")

Importing this package is light (the config only); torch, onnx and onnx2tf load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgecompress.export.config import ExportConfig

_LAZY = {
    "export": "edgecompress.export.checkpoint",
    "load_student": "edgecompress.export.checkpoint",
    "export_module": "edgecompress.export.api",
    "list_recipes": "edgecompress.export.registry",
    "register_recipe": "edgecompress.export.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecompress.export' has no attribute {name!r}")


__all__ = ["ExportConfig", *_LAZY]
