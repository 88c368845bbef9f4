"""`edgecompress env`: versions of everything that matters, for bug reports."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys

import click

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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def env(as_json: bool) -> None:
    """Print versions of python, torch, onnx, onnxruntime, tensorflow, onnx2tf and the TFLite interpreter."""
    v = versions()
    if as_json:
        click.echo(json.dumps(v, indent=2))
        return
    width = max(map(len, v))
    for k, val in v.items():
        click.echo(f"{k.ljust(width)}  {val}")
    click.echo(f"{'executable'.ljust(width)}  {sys.executable}")
