"""Which of a teacher's outputs are the logits: a tensor, a tuple, a list or a dict of them.

Models trained elsewhere often return more than logits (``(logits, features)``, torchvision's
``{"out": ..., "aux": ...}``, a HuggingFace-style ``{"logits": ...}``). Every output gets a
*name*: its dict key or tuple index, dotted for nesting (``"0"``, ``"logits"``, ``"aux.1"``).
``--teacher-output NAME|INDEX`` picks one; without it the logits are found when unambiguous.
"""

from __future__ import annotations

from typing import Any

import torch

from edgecompress.errors import TeacherError

# Keys that mean "the logits" in common model zoos, in order of preference.
LOGIT_KEYS = ("logits", "out", "output", "outputs", "pred", "preds", "y")


def named_outputs(out: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten a (nested) tensor / tuple / list / dict output into ``(name, leaf)`` pairs, in order."""
    if isinstance(out, dict):
        items: list[tuple[str, Any]] = []
        for k, v in out.items():
            items += named_outputs(v, f"{prefix}{k}.")
        return items
    if isinstance(out, (tuple, list)):
        items = []
        for i, v in enumerate(out):
            items += named_outputs(v, f"{prefix}{i}.")
        return items
    return [(prefix[:-1], out)]


def _describe(named: list[tuple[str, Any]]) -> str:
    return ", ".join(
        f"{n or '<tensor>'}: {'x'.join(str(int(s)) for s in v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
        for n, v in named
    )


def choose_output(out: Any, choice: str | None, num_classes: int | None, where: str) -> str:
    """The name of the logits among ``out``'s outputs ("" for a plain tensor). ``choice`` is the
    user's NAME or INDEX; otherwise a plain tensor, a single output, a well-known key, or the one
    2-D output with ``num_classes`` columns. Anything else is one line listing the outputs."""
    named = named_outputs(out)
    names = [n for n, _ in named]
    if choice is not None:
        if choice in names:
            name = choice
        elif choice.lstrip("-").isdigit() and -len(named) <= int(choice) < len(named):
            name = names[int(choice)]  # an index into the flat list of outputs
        else:
            raise TeacherError(f"{where}: --teacher-output {choice!r} is not one of the teacher's outputs ({_describe(named)})")
        if not isinstance(dict(named)[name], torch.Tensor):
            raise TeacherError(f"{where}: teacher output {name!r} is a {type(dict(named)[name]).__name__}, not a tensor")
        return name
    tensors = [(n, v) for n, v in named if isinstance(v, torch.Tensor)]
    if len(named) == 1 and tensors:
        return tensors[0][0]
    for key in LOGIT_KEYS:
        if key in names and isinstance(dict(named)[key], torch.Tensor):
            return key
    fits = [n for n, v in tensors if v.dim() == 2 and (num_classes is None or v.shape[1] == num_classes)]
    if len(fits) == 1:
        return fits[0]
    if not tensors:
        raise TeacherError(f"{where}: the teacher returned no tensor (got {type(out).__name__})")
    raise TeacherError(
        f"{where}: the teacher returns {len(named)} outputs ({_describe(named)}); say which are the logits with "
        f"--teacher-output NAME|INDEX"
    )


def pick(out: Any, name: str) -> torch.Tensor:
    """The output called ``name`` (see :func:`named_outputs`)."""
    if name == "" and isinstance(out, torch.Tensor):
        return out
    value: Any = dict(named_outputs(out))[name]
    return value  # type: ignore[no-any-return]
