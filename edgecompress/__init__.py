"""edgecompress: bring a big, accurate vision network down to a phone or a board.

Importing this package is cheap: it imports neither torch, onnx nor tensorflow. The heavy
stage functions are loaded on first use::

    from edgecompress import select_student, distill, export, benchmark, build
"""

from __future__ import annotations

import importlib
from typing import Any

from edgecompress.artifacts import (
    BenchmarkResult,
    Checkpoint,
    CostEstimate,
    ExportArtifact,
    StudentSpec,
)
from edgecompress.build_report import BuildReport
from edgecompress.errors import EdgeCompressError, InternalError
from edgecompress.profiles import DeviceProfile, list_profiles, load_profile

__version__ = "0.1.0"

# Public stage functions, imported lazily so that `import edgecompress` stays light.
_LAZY = {
    "select_student": "edgecompress.select",
    "distill": "edgecompress.distill",
    "export": "edgecompress.export",
    "benchmark": "edgecompress.bench",
    "build": "edgecompress.pipeline",
    "load_task": "edgecompress.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecompress' has no attribute {name!r}")


__all__ = [
    "BenchmarkResult",
    "BuildReport",
    "Checkpoint",
    "CostEstimate",
    "DeviceProfile",
    "EdgeCompressError",
    "ExportArtifact",
    "InternalError",
    "StudentSpec",
    "list_profiles",
    "load_profile",
    *_LAZY,
]
