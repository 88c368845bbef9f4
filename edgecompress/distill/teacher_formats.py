"""Teacher file formats as registered sniffers and loaders, tried in order.

Each format says how to recognise its files (suffix, the first bytes, the names inside a zip
archive) and how to load one into a :class:`~edgecompress.distill.teacher.Teacher`. The order
matters: TorchScript and ``torch.export`` archives are zip files too, so they are tried before
the generic torch checkpoint (a state_dict or a pickled module). A file no format claims gets
one line listing the formats. Adding one is a sniffer, a loader and one ``register_teacher_format``.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecompress.distill.teacher import ModuleTeacher, Teacher, TorchScriptTeacher
from edgecompress.errors import TeacherError


@dataclasses.dataclass(frozen=True)
class LoadRequest:
    path: Path
    entry_point: str | None
    entry_point_kwargs: dict[str, Any] | str | None
    trust_checkpoint: bool
    num_classes: int | None


@dataclasses.dataclass(frozen=True)
class FileFacts:
    """What sniffers look at: the suffix, the first bytes, and the member names of a zip archive."""

    suffix: str
    head: bytes
    zip_names: tuple[str, ...] | None  # None: not a zip archive


@dataclasses.dataclass(frozen=True)
class TeacherFormat:
    name: str
    description: str
    sniff: Callable[[FileFacts], bool]
    load: Callable[[LoadRequest], Teacher]


_FORMATS: list[TeacherFormat] = []


def register_teacher_format(fmt: TeacherFormat) -> TeacherFormat:
    if any(f.name == fmt.name for f in _FORMATS):
        raise ValueError(f"teacher format {fmt.name!r} is already registered")
    _FORMATS.append(fmt)
    return fmt


def sniff(path: Path) -> TeacherFormat:
    """The first registered format that claims ``path``; one line when none does."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    names = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = tuple(zf.namelist())
    facts = FileFacts(path.suffix.lower(), head, names)
    for fmt in _FORMATS:
        if fmt.sniff(facts):
            return fmt
    if names is None and (head[:1] == b"\x80" or head[:2] == b"PK"):  # legacy pickle or truncated zip
        raise TeacherError(f"{path}: corrupt or legacy torch file (expected a zip-based .pt/.pt2 archive)")
    raise TeacherError(f"{path}: unknown teacher format (allowed: {'; '.join(f.description for f in _FORMATS)})")


def _first(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- the built-in formats


def _load_onnx(req: LoadRequest) -> Teacher:
    from edgecompress.distill.teacher_onnx import OnnxTeacher

    return OnnxTeacher(req.path)


def _is_torchscript(f: FileFacts) -> bool:
    names = f.zip_names or ()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names) and not any("archive_format" in n for n in names)


def _load_torchscript(req: LoadRequest) -> Teacher:
    try:
        return TorchScriptTeacher(torch.jit.load(str(req.path), map_location="cpu"), req.path)
    except Exception as exc:  # any failure of the loader means a damaged archive
        raise TeacherError(f"{req.path}: corrupt TorchScript archive ({_first(exc)})") from None


def _is_exported(f: FileFacts) -> bool:
    names = f.zip_names or ()
    return f.zip_names is not None and (
        f.suffix == ".pt2" or any("serialized_exported_program" in n or n.endswith("models/model.json") for n in names))


def _load_exported(req: LoadRequest) -> Teacher:
    try:
        ep = torch.export.load(str(req.path))
    except Exception as exc:  # any failure of the loader means a damaged archive
        raise TeacherError(f"{req.path}: corrupt torch.export archive ({_first(exc)})") from None
    from edgecompress.distill.teacher_exported import ExportedTeacher

    return ExportedTeacher(ep, req.path)


def _load_checkpoint(req: LoadRequest) -> Teacher:
    """A state_dict (built by the entry point's factory) or, with --trust-checkpoint, a pickled module."""
    from edgecompress.distill.teacher_load import build_from_entry_point

    p = req.path
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        # The weights-only unpickler names the forbidden global: that is a pickled object, not damage.
        pickled = "weights_only" in str(exc) or "Unsupported global" in str(exc)
        if not pickled:
            raise TeacherError(f"{p}: corrupt torch checkpoint ({_first(exc)})") from None
        if not req.trust_checkpoint:
            raise TeacherError(
                f"{p}: holds pickled Python objects (a whole module?) that weights_only=True refuses; pass "
                f"--trust-checkpoint only if you trust this file, or save a state_dict / .pt2 instead"
            ) from None
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=False)  # only with --trust-checkpoint (checked above)
        except Exception:
            raise TeacherError(f"{p}: corrupt torch checkpoint ({_first(exc)})") from None
    if isinstance(obj, nn.Module):
        return ModuleTeacher(obj, p, "pickled-module")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TeacherError(f"{p}: the file holds a {type(obj).__name__}, not a state_dict or a module")
    if req.entry_point is None:
        raise TeacherError(f"{p}: a state_dict needs --entry-point package.module:factory to build the network")
    model = build_from_entry_point(req.entry_point, req.entry_point_kwargs, req.num_classes, search=[Path.cwd(), p.parent])
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise TeacherError(f"{p}: state_dict does not fit {req.entry_point} ({_first(exc)}: {detail})") from None
    return ModuleTeacher(model, p, "state_dict")


register_teacher_format(TeacherFormat("onnx", ".onnx (ONNX Runtime)", lambda f: f.suffix == ".onnx", _load_onnx))
register_teacher_format(TeacherFormat("torchscript", "TorchScript .pt", _is_torchscript, _load_torchscript))
register_teacher_format(TeacherFormat("pt2", ".pt2 ExportedProgram", _is_exported, _load_exported))
register_teacher_format(TeacherFormat(
    "torch-checkpoint", "state_dict .pt with --entry-point module:factory, or a pickled module with --trust-checkpoint",
    lambda f: f.zip_names is not None, _load_checkpoint,
))
