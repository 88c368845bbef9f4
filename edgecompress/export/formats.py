"""Artifact formats as registered providers (stdlib only: the CLI lists them for --help).

A format says how its files are named, which engine runs them (``onnx``: ONNX Runtime,
``tflite``: the LiteRT interpreter -- what the parity gate, the benchmark runners and the
device-side runner load), how they lay out their input, what must be installed to build them,
and how to read a file's op counts and input spec for the manifest. The exporter, the
manifest, the parity gate and ``bench`` read these fields; none of them names a format.

    register_format(ArtifactFormat("onnx-ort", ".onnx", engine="onnx"))

and its recipes register with ``@register_recipe("onnx-ort", "fp32", ...)``
(``export/registry.py``). A device runtime deploying it names it as its ``artifact_format``
(``edgecompress/runtimes.py``).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from edgecompress.errors import ExportError

ENGINES = ("onnx", "tflite")  # what the parity gate and the benchmark runners can load


@dataclasses.dataclass(frozen=True)
class ArtifactFormat:
    name: str
    suffix: str  # file suffix of its artifacts (".onnx", ".tflite")
    engine: str  # one of ENGINES: which runtime loads the file
    layout_from_config: bool = False  # input layout from ExportConfig.layout (TFLite: NHWC/NCHW); else NCHW
    requires: str | None = None  # "module:function" raising MissingExtraError when the toolchain is absent

    def layout(self, config_layout: str) -> str:
        return config_layout if self.layout_from_config else "nchw"

    def check_installed(self) -> None:
        if self.requires:
            module, _, fn = self.requires.partition(":")
            getattr(importlib.import_module(module), fn)()


_FORMATS: dict[str, ArtifactFormat] = {}


def register_format(fmt: ArtifactFormat) -> ArtifactFormat:
    if fmt.name in _FORMATS:
        raise ValueError(f"artifact format {fmt.name!r} is already registered")
    if fmt.engine not in ENGINES:
        raise ValueError(f"artifact format {fmt.name!r}: engine must be one of {', '.join(ENGINES)}")
    _FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> ArtifactFormat:
    if name not in _FORMATS:
        raise ExportError(f"export: format {name!r} is not registered (allowed: {', '.join(_FORMATS)})")
    return _FORMATS[name]


def list_formats() -> tuple[str, ...]:
    return tuple(_FORMATS)


def engine_of_suffix(suffix: str) -> str | None:
    """The engine that loads files with ``suffix`` (for ``bench`` given a bare file)."""
    return next((f.engine for f in _FORMATS.values() if f.suffix == suffix.lower()), None)


def run(fmt: str, path: Any, x_nchw: Any, config_layout: str) -> Any:
    """Logits of the artifact at ``path`` on ``x_nchw`` through its engine (the parity gate)."""
    from edgecompress.export.parity import run_onnx, run_tflite

    f = get_format(fmt)
    return run_onnx(path, x_nchw) if f.engine == "onnx" else run_tflite(path, x_nchw, f.layout(config_layout))


register_format(ArtifactFormat("onnx", ".onnx", "onnx"))
register_format(ArtifactFormat("tflite", ".tflite", "tflite", layout_from_config=True,
                               requires="edgecompress.export.tflite_recipes:require_tflite"))
