"""Installed versions of everything that matters (stdlib only): for `edgecompress env`, bug
reports and every run's summary."""

from __future__ import annotations

import importlib.metadata
import platform

# (label, distribution names to try in order)
_PACKAGES = [
    ("edgecompress", ["edgecompress"]),
    ("torch", ["torch"]),
    ("numpy", ["numpy"]),
    ("onnx", ["onnx"]),
    ("onnxruntime", ["onnxruntime"]),
    ("onnxscript", ["onnxscript"]),
    ("tensorflow", ["tensorflow", "tensorflow-cpu"]),
    ("onnx2tf", ["onnx2tf"]),
    ("tflite interpreter", ["ai-edge-litert", "tflite-runtime"]),
]


def versions() -> dict[str, str]:
    """Installed versions read from package metadata (nothing heavy is imported)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for label, dists in _PACKAGES:
        found = "not installed"
        for dist in dists:
            try:
                found = f"{importlib.metadata.version(dist)}" + (f" ({dist})" if len(dists) > 1 else "")
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        out[label] = found
    return out
