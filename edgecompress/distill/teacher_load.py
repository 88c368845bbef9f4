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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from edgecompress.distill.teacher import Teacher, one_line
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
    from edgecompress.distill.teacher_formats import LoadRequest, sniff

    p = Path(path)
    if not p.exists():
        raise TeacherError(f"{p}: teacher file not found")
    if not p.is_file():
        raise TeacherError(f"{p}: teacher path is not a file")
    teacher = sniff(p).load(LoadRequest(p, entry_point, entry_point_kwargs, trust_checkpoint, num_classes))
    teacher.output_choice = None if output is None else str(output)
    teacher.num_classes = num_classes
    return teacher
