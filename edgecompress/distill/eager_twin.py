"""An exported teacher's eager twin: the same weights as a real ``nn.Module``, declared beside
the ``.pt2`` by a sidecar ``<stem>.eager.json``.

An ExportedProgram cannot be put in eval mode or traced again; channel pruning needs a real
module. Any ``.pt2`` can be lifted (pt2_lift.py), but a lifted graph names its layers after
graph nodes; a twin keeps the original module names (what feature taps and alignment layers are
called by). The sidecar names a *registered* builder (no module path from a file is ever
imported) and a ``state_dict`` loaded with ``weights_only=True``::

    {"builder": "demo-teacher", "kwargs": {"dataset": "shapes", "in_channels": 3, "num_classes": 12},
     "state_dict": "<stem>.state_dict.pt"}

The built-in demo teacher writes one; a package can register its own builder.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecompress.artifacts import atomic_write_text
from edgecompress.errors import TeacherError

SUFFIX = ".eager.json"

# builder name -> "module:function" building the untrained module from the sidecar's kwargs.
_BUILDERS: dict[str, str] = {"demo-teacher": "edgecompress.distill.demo_teacher:build_demo_teacher"}


def register_builder(name: str, target: str) -> None:
    if name in _BUILDERS:
        raise ValueError(f"eager-twin builder {name!r} is already registered")
    _BUILDERS[name] = target


def sidecar_path(pt2_path: Path) -> Path:
    return pt2_path.with_name(pt2_path.name.removesuffix(".pt2") + SUFFIX)


def write_sidecar(pt2_path: Path, builder: str, kwargs: dict[str, Any], state_dict: Path) -> Path:
    record = {"builder": builder, "kwargs": kwargs, "state_dict": state_dict.name}
    path = sidecar_path(pt2_path)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def _builder(name: str, where: Path) -> Callable[..., nn.Module]:
    if name not in _BUILDERS:
        raise TeacherError(f"{where}: builder {name!r} is not registered (registered: {', '.join(_BUILDERS)})")
    module, _, fn = _BUILDERS[name].partition(":")
    return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


def eager_twin(pt2_path: Path) -> nn.Module | None:
    """The module the sidecar describes, in eval mode; None when the ``.pt2`` has no sidecar.
    A sidecar that is present but wrong is one TeacherError line naming it."""
    path = sidecar_path(pt2_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        weights = pt2_path.with_name(Path(record["state_dict"]).name)  # beside the .pt2, never elsewhere
        model = _builder(str(record["builder"]), path)(**dict(record.get("kwargs") or {}))
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except TeacherError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise TeacherError(f"{path}: cannot build the eager twin ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return model.eval()
