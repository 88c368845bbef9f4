"""``load_teacher``: sniff the file's format, build the teacher, and turn every failure -- a bad
file, or the user's own code raising while it is imported, called or loaded -- into one line.

The entry-point module (``--entry-point mymodel:make``) is looked up where users keep it: the
current folder and the folder of the weights file, besides ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecompress.distill.teacher import ModuleTeacher, Teacher, TorchScriptTeacher, one_line
from edgecompress.errors import TeacherError


def parse_kwargs(kwargs: dict[str, Any] | str | None, entry_point: str) -> dict[str, Any]:
    """``--entry-point-kwargs``: a JSON object (CLI) or a mapping (run config, Python)."""
    if kwargs is None:
        return {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError as exc:
            raise TeacherError(f"--entry-point-kwargs {kwargs!r} is not valid JSON ({exc.msg}); e.g. '{{\"num_classes\": 20}}'") from None
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TeacherError(f"--entry-point-kwargs must be a JSON object of keyword arguments for {entry_point}, got {kwargs!r}")
    return dict(kwargs)


@contextlib.contextmanager
def _search_path(folders: list[Path]) -> Iterator[None]:
    added = [str(f.resolve()) for f in folders if str(f.resolve()) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


def _import_factory(entry_point: str, search: list[Path]) -> Callable[..., Any]:
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise TeacherError(f"entry point {entry_point!r} is not of the form 'package.module:factory'")
    with _search_path(search):
        try:
            mod = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                where = ", ".join(str(f) for f in dict.fromkeys(search))
                raise TeacherError(
                    f"entry point {entry_point!r}: cannot import {module_name!r} (not on sys.path, nor in {where})"
                ) from None
            raise TeacherError(f"entry point {entry_point!r}: importing {module_name} failed ({one_line(exc)})") from None
        except BaseException as exc:  # the user's module ran and raised (SystemExit included)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TeacherError(f"entry point {entry_point!r}: importing {module_name} failed ({one_line(exc)})") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise TeacherError(f"entry point {entry_point!r}: {module_name} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


def build_from_entry_point(
    entry_point: str, kwargs: dict[str, Any] | str | None, num_classes: int | None, search: list[Path]
) -> nn.Module:
    """Import and call the factory; its failures (and a non-module result) are one line."""
    factory = _import_factory(entry_point, search)
    args = parse_kwargs(kwargs, entry_point)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if num_classes is not None and "num_classes" in params and "num_classes" not in args:
        args["num_classes"] = num_classes
    call = f"{entry_point.partition(':')[2]}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    try:
        model = factory(**args)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        hint = " (pass them with --entry-point-kwargs '{...}')" if isinstance(exc, TypeError) else ""
        raise TeacherError(f"entry point {entry_point!r}: calling {call} failed ({one_line(exc)}){hint}") from None
    if not isinstance(model, nn.Module):
        raise TeacherError(f"entry point {entry_point!r}: {call} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_teacher(
    path: str | Path,
    *,
    entry_point: str | None = None,
    entry_point_kwargs: dict[str, Any] | str | None = None,
    trust_checkpoint: bool = False,
    output: str | int | None = None,
    num_classes: int | None = None,
) -> Teacher:
    """Load a teacher from ``.pt2``, TorchScript, state_dict (+ ``entry_point``), pickled module
    (only with ``trust_checkpoint``) or ``.onnx``. Every failure is one TeacherError line.

    ``entry_point_kwargs`` (a dict or a JSON object) go to the factory; a factory taking
    ``num_classes`` gets ``num_classes`` (the data's class count) unless given. ``output`` names
    the logits among a tuple/list/dict output (NAME or INDEX; see teacher_outputs)."""
    teacher = _load(Path(path), entry_point, entry_point_kwargs, trust_checkpoint, num_classes)
    teacher.output_choice = None if output is None else str(output)
    teacher.num_classes = num_classes
    return teacher


def _load(
    p: Path, entry_point: str | None, kwargs: dict[str, Any] | str | None, trust_checkpoint: bool, num_classes: int | None
) -> Teacher:
    if not p.exists():
        raise TeacherError(f"{p}: teacher file not found")
    if not p.is_file():
        raise TeacherError(f"{p}: teacher path is not a file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        from edgecompress.distill.teacher_onnx import OnnxTeacher

        return OnnxTeacher(p)
    if not zipfile.is_zipfile(p):
        if head[:1] == b"\x80" or head[:2] == b"PK":  # legacy pickle or truncated zip
            raise TeacherError(f"{p}: corrupt or legacy torch file (expected a zip-based .pt/.pt2 archive)")
        raise TeacherError(
            f"{p}: unknown teacher format (allowed: .pt2 ExportedProgram, TorchScript .pt, state_dict .pt with "
            f"--entry-point module:factory, pickled module with --trust-checkpoint, .onnx)"
        )
    with zipfile.ZipFile(p) as zf:
        names = zf.namelist()
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names) and not any("archive_format" in n for n in names):
        try:
            return TorchScriptTeacher(torch.jit.load(str(p), map_location="cpu"), p)
        except Exception as exc:
            raise TeacherError(f"{p}: corrupt TorchScript archive ({str(exc).splitlines()[0][:200]})") from None
    if suffix == ".pt2" or any("serialized_exported_program" in n or n.endswith("models/model.json") for n in names):
        try:
            ep = torch.export.load(str(p))
        except Exception as exc:
            raise TeacherError(f"{p}: corrupt torch.export archive ({str(exc).splitlines()[0][:200]})") from None
        from edgecompress.distill.teacher_exported import ExportedTeacher

        return ExportedTeacher(ep, p)
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        # The weights-only unpickler names the forbidden global: that is a pickled object, not damage.
        pickled = "weights_only" in str(exc) or "Unsupported global" in str(exc)
        if not pickled:
            raise TeacherError(f"{p}: corrupt torch checkpoint ({str(exc).splitlines()[0][:200]})") from None
        if not trust_checkpoint:
            raise TeacherError(
                f"{p}: holds pickled Python objects (a whole module?) that weights_only=True refuses; pass "
                f"--trust-checkpoint only if you trust this file, or save a state_dict / .pt2 instead"
            ) from None
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=False)  # only with --trust-checkpoint (checked above)
        except Exception:
            raise TeacherError(f"{p}: corrupt torch checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(obj, nn.Module):
        return ModuleTeacher(obj, p, "pickled-module")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TeacherError(f"{p}: the file holds a {type(obj).__name__}, not a state_dict or a module")
    if entry_point is None:
        raise TeacherError(f"{p}: a state_dict needs --entry-point package.module:factory to build the network")
    model = build_from_entry_point(entry_point, kwargs, num_classes, search=[Path.cwd(), p.parent])
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        detail = " ".join(str(exc).split())[:300]
        raise TeacherError(f"{p}: state_dict does not fit {entry_point} ({first}: {detail})") from None
    return ModuleTeacher(model, p, "state_dict")
