"""Load a teacher from any of the formats people ship, and read its logits and features.

=================  ==========================================  ===================================
format             how it loads                                features it can give
=================  ==========================================  ===================================
``.pt2``           ``torch.export.load`` (ExportedProgram)      logits, embedding, any module name
TorchScript        ``torch.jit.load``                           logits (+ ``forward_features``)
state_dict         ``module:factory`` + ``weights_only=True``   logits, embedding, any module name
pickled module     ``torch.load`` only with trust_checkpoint    logits, embedding, any module name
``.onnx``          ONNX Runtime                                 logits (+ embedding, see below)
=================  ==========================================  ===================================

Loading lives in :mod:`~edgecompress.distill.teacher_load`; ``.pt2`` in
:mod:`~edgecompress.distill.teacher_exported`, ONNX in :mod:`~edgecompress.distill.teacher_onnx`.
A teacher may return a tuple, list or dict: :mod:`~edgecompress.distill.teacher_outputs` says
which output is the logits. Any exception raised by the teacher's own code becomes one
:class:`TeacherError` line naming the teacher and the phase, and non-finite logits are caught
where they appear, naming the teacher (not the student's loss).

The *embedding* is the pooled pre-classifier feature (what the ANC discriminator sees). When
no tap name is given it is found automatically as the input of the last ``Linear`` (last
``aten.linear`` / ``Gemm`` / ``MatMul`` in a graph). Named taps are module names
(``named_modules()``), checked up front with the nearest names suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecompress.distill.teacher_outputs import choose_output, pick
from edgecompress.errors import TeacherError


@dataclasses.dataclass
class TeacherOutput:
    logits: torch.Tensor
    embedding: torch.Tensor | None
    taps: dict[str, torch.Tensor]


def nearest_names_error(kind: str, name: str, names: list[str]) -> TeacherError:
    """One line naming a wrong tap and the closest real names (difflib)."""
    near = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or names[:5]
    return TeacherError(f"{kind} feature tap {name!r} does not exist (nearest: {', '.join(near) or 'none'})")


class Teacher:
    """A frozen teacher in eval mode: ``teacher(x) -> TeacherOutput``, gradients off."""

    format: str = ""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.taps: tuple[str, ...] = ()
        self.embedding_tap: str | None = None  # None: input of the last Linear
        self.output_choice: str | None = None  # --teacher-output NAME|INDEX
        self.output_name: str | None = None  # the logits' output name, resolved on the first call
        self.num_classes: int | None = None  # the data's class count: disambiguates outputs

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else f"teacher ({self.format})"

    # -- to override
    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        """The (C, H, W) the teacher declares, when its format records one."""
        return None

    @property
    def module(self) -> nn.Module | None:
        """An eager nn.Module view (for the pruned-teacher student family); None for ONNX."""
        return None

    def feature_names(self) -> list[str]:
        return []

    def parameter_count(self) -> int:
        """Weights the teacher holds (what a student is compressed against)."""
        module = self.module
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    @property
    def has_embedding(self) -> bool:
        return True

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        raise NotImplementedError

    # -- shared
    def set_taps(self, taps: list[str] | tuple[str, ...] = (), embedding: str | None = None) -> None:
        """Choose extra feature taps and the embedding tap; wrong names fail here, listing nearest."""
        names = self.feature_names()
        for name in [*taps, *([embedding] if embedding else [])]:
            if name not in names:
                raise nearest_names_error(f"teacher ({self.format})", name, names)
        self.taps = tuple(taps)
        self.embedding_tap = embedding

    def logits_of(self, out: Any) -> torch.Tensor:
        """The logits among a raw forward's outputs (resolved once, see teacher_outputs)."""
        if self.output_name is None:
            self.output_name = choose_output(out, self.output_choice, self.num_classes, self.where)
        return pick(out, self.output_name)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, phase: str = "") -> TeacherOutput:
        """``phase`` says what failed in the one-line error (default: a forward on this batch)."""
        phase = phase or f"forward failed on a {_shape(x.shape)} batch"
        try:
            out = self._run(x)
        except TeacherError:
            raise
        except Exception as exc:  # the teacher's own code: one line naming it, the phase and the cause
            raise TeacherError(f"{self.where}: teacher {phase} ({one_line(exc)})") from None
        logits = out.logits.float()
        if not bool(torch.isfinite(logits).all()):
            raise TeacherError(
                f"{self.where}: the teacher's logits contain NaN or inf (on a {_shape(x.shape)} batch); check the "
                f"teacher's weights and the preprocessing (--mean/--std/--pixel-range)"
            )
        return TeacherOutput(logits, None if out.embedding is None else out.embedding.float(), out.taps)

    def verify(self, x: torch.Tensor) -> None:
        """Check any fast path against the reference one on a real batch (see ExportedTeacher)."""

    def probe(self, input_shape: tuple[int, int, int]) -> TeacherOutput:
        """Run on two zero images of ``input_shape``; a teacher that cannot is a user error."""
        declared = self.input_shape
        if declared is not None and tuple(declared) != tuple(input_shape):
            raise TeacherError(
                f"{self.path}: teacher input size {_shape(declared)} disagrees with the data's {_shape(input_shape)}"
            )
        return self(torch.zeros(2, *input_shape), phase=f"cannot run on the data's input size {_shape(input_shape)}")


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(str(int(v)) for v in s)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters) for a one-line error."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


# --------------------------------------------------------------------------- eager modules


class ModuleTeacher(Teacher):
    """Any eager nn.Module (state_dict + factory, pickled module): taps are forward hooks."""

    def __init__(self, module: nn.Module, path: Path | None, fmt: str) -> None:
        super().__init__(path)
        self.format = fmt
        self._module = module.eval()
        for p in self._module.parameters():
            p.requires_grad_(False)
        self._linears = [n for n, m in self._module.named_modules() if isinstance(m, nn.Linear)]

    @property
    def module(self) -> nn.Module:
        return self._module

    def feature_names(self) -> list[str]:
        return [n for n, _ in self._module.named_modules() if n]

    @property
    def has_embedding(self) -> bool:
        return bool(self._linears) or self.embedding_tap is not None

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        captured: dict[str, torch.Tensor] = {}
        mods = dict(self._module.named_modules())
        handles = []

        def out_hook(name: str) -> Callable[..., None]:
            def hook(_m: nn.Module, _i: Any, out: Any) -> None:
                captured[name] = out

            return hook

        def in_hook(_m: nn.Module, inputs: Any, _o: Any) -> None:
            # Overwritten on every call, so after forward it holds the *last* Linear's input.
            captured["__last_linear_in__"] = inputs[0]

        try:
            for name in self.taps:
                handles.append(mods[name].register_forward_hook(out_hook(name)))
            if self.embedding_tap is not None:
                handles.append(mods[self.embedding_tap].register_forward_hook(out_hook("__emb__")))
            else:
                for name in self._linears:
                    handles.append(mods[name].register_forward_hook(in_hook))
            logits = self.logits_of(self._module(x))
        finally:
            for h in handles:
                h.remove()
        emb = captured.get("__emb__", captured.get("__last_linear_in__"))
        if emb is not None:
            emb = torch.flatten(emb, 1)
        return TeacherOutput(logits, emb, {n: captured[n] for n in self.taps})


class TorchScriptTeacher(Teacher):
    """TorchScript modules do not run Python hooks: logits, and ``forward_features`` if exported."""

    format = "torchscript"

    def __init__(self, module: torch.jit.ScriptModule, path: Path) -> None:
        super().__init__(path)
        self._module = module.eval()
        self._has_ff = hasattr(module, "forward_features")

    @property
    def has_embedding(self) -> bool:
        return self._has_ff

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._module.parameters())

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        if self._has_ff:
            emb = self._module.forward_features(x)
            return TeacherOutput(self.logits_of(self._module(x)), torch.flatten(emb, 1), {})
        return TeacherOutput(self.logits_of(self._module(x)), None, {})


