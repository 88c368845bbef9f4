"""A ``torch.export`` (``.pt2``) teacher: as fast as eager, prunable, with taps by module name.

The program is lifted back to an eager module (:mod:`~edgecompress.distill.pt2_lift`): the
whole batch runs in one call, the feature taps are extra graph outputs, and the
``pruned-teacher`` student can be cut from it. The lift is checked once against the program
itself, run image by image at its exported batch size, on the first real batch
(:meth:`ExportedTeacher.verify`); if they disagree, or the graph cannot be lifted, the program
runs as exported (in chunks of its batch size, taps recorded by an fx interpreter) and the
reason is kept in :attr:`ExportedTeacher.lift_note` for the user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree

from edgecompress.distill.eager_twin import eager_twin
from edgecompress.distill.pt2_lift import LiftError, lift_exported, outputs_match, select_outputs
from edgecompress.distill.teacher import Teacher, TeacherOutput, one_line
from edgecompress.distill.teacher_outputs import named_outputs
from edgecompress.errors import TeacherError


def _static(v: Any) -> bool:
    return isinstance(v, int) or str(v).isdigit()


class ExportedTeacher(Teacher):
    """A ``torch.export`` program. Taps read graph values by their ``nn_module_stack`` owner."""

    format = "pt2"

    def __init__(self, ep: torch.export.ExportedProgram, path: Path) -> None:
        super().__init__(path)
        self._ep = ep
        # The program's own module checks its inputs against the exported shapes and refuses
        # .eval()/.train(); BN/dropout behaviour is baked into the graph as exported.
        self._gm = ep.module()
        nodes = list(ep.graph.nodes)
        user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        if len(user_inputs) != 1:
            raise TeacherError(f"{path}: the exported program takes {len(user_inputs)} inputs; a teacher takes one image batch")
        inp = next(n for n in nodes if n.name == user_inputs[0])
        shape = tuple(getattr(inp.meta.get("val"), "shape", ()))
        self._input_shape = tuple(int(s) for s in shape[1:]) if len(shape) == 4 and all(map(_static, shape[1:])) else None
        # A program exported with a concrete batch size (torch.export's default) only runs that batch.
        self._batch = int(shape[0]) if len(shape) == 4 and _static(shape[0]) else None
        self._owner_last: dict[str, str] = {}  # module name -> the last node computed inside it (its output)
        linear_inputs: list[str] = []
        for n in nodes:
            if n.op != "call_function":
                continue
            for qualname, _type in (n.meta.get("nn_module_stack") or {}).values():
                if qualname:
                    self._owner_last[qualname] = n.name
            target = str(n.target)
            if "aten.linear" in target:
                linear_inputs.append(n.args[0].name)
            elif "aten.addmm" in target:
                linear_inputs.append(n.args[1].name)
        self._auto_emb = linear_inputs[-1] if linear_inputs else None
        out_node = next(n for n in nodes if n.op == "output")
        n_out = len(pytree.tree_leaves(out_node.args[0]))
        self._out_spec = ep.call_spec.out_spec
        self._out_names = [n for n, _ in named_outputs(pytree.tree_unflatten(list(range(n_out)), self._out_spec))]
        self._eager = eager_twin(path)
        self._lifted: fx.GraphModule | None = None
        self._names: dict[str, str] = {}
        self._tapped: tuple[tuple[Any, ...], fx.GraphModule] | None = None
        self._verified = False
        self._module_cache: tuple[int, fx.GraphModule] | None = None
        self.lift_note: str | None = None
        try:
            self._lifted, self._names = lift_exported(ep, self._batch)
        except (LiftError, KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            self.lift_note = f"its graph cannot be rebuilt as an eager module ({one_line(exc)})"

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        return self._input_shape  # type: ignore[return-value]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._gm.parameters())

    @property
    def module(self) -> nn.Module | None:
        """An eager view that can be channel-pruned: the eager twin the ``.pt2`` declares
        (distill/eager_twin.py), else the lifted program returning the logits; None (with
        :attr:`lift_note`) when not liftable."""
        if self._eager is not None:
            return self._eager
        if self._lifted is None:
            return None
        index = self._logits_index()
        if self._module_cache is None or self._module_cache[0] != index:  # one object: pruning caches by identity
            self._module_cache = (index, select_outputs(self._lifted, index))
        return self._module_cache[1]

    def feature_names(self) -> list[str]:
        return sorted(self._owner_last)

    @property
    def has_embedding(self) -> bool:
        return self._auto_emb is not None or self.embedding_tap is not None

    # -- running
    def _logits_index(self) -> int:
        if self.output_name is None:
            if len(self._out_names) == 1 and self.output_choice is None:
                self.output_name = self._out_names[0]
            else:  # needs real output shapes to decide: one tiny forward of the program
                x = torch.zeros(self._batch or 1, *(self._input_shape or (3, 32, 32)))
                self.logits_of(self._gm(x))
        return self._out_names.index(self.output_name or "")

    def verify(self, x: torch.Tensor) -> None:
        """Check the lifted module against the program on a real batch ``x``, once; a mismatch
        (a batch-size assumption the lift could not see) falls back to the program itself."""
        if self._verified or self._lifted is None:
            return
        self._verified = True
        try:
            fast = self._lifted(x)
        except Exception as exc:  # the teacher's graph: any failure means "do not use the lift"
            self._fall_back(f"the whole-batch run failed ({one_line(exc)})")
            return
        ref = self._chunked(x, lambda c: pytree.tree_leaves(self._gm(c)))
        if not outputs_match(list(fast), ref, atol=1e-3, rtol=1e-3):
            self._fall_back("the whole-batch run disagreed with per-image results")

    def _fall_back(self, why: str) -> None:
        self._lifted, self._tapped, self._module_cache = None, None, None
        self.lift_note = f"{why}; running it as exported, {self._batch or 'any'} image(s) per call"

    def _tap_nodes(self) -> tuple[str | None, tuple[str, ...]]:
        emb = self._owner_last[self.embedding_tap] if self.embedding_tap else self._auto_emb
        return emb, tuple(self._owner_last[t] for t in self.taps)

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        if self._lifted is not None:
            if not self._verified:
                self.verify(x)
            if self._lifted is not None:
                return self._run_lifted(x)
        return self._run_exported(x)

    def _run_lifted(self, x: torch.Tensor) -> TeacherOutput:
        assert self._lifted is not None
        emb, taps = self._tap_nodes()
        wanted = tuple(self._names[n] for n in ([emb] if emb else []) + list(taps))
        key = (self.output_name, wanted)
        if self._tapped is None or self._tapped[0] != key:
            module = select_outputs(self._lifted, self._logits_index(), wanted)
            self._tapped = ((self.output_name, wanted), module)  # output_name is resolved now
        out = self._tapped[1](x)
        if not wanted:
            return TeacherOutput(out, None, {})
        vals = list(out[1:])
        embedding = torch.flatten(vals.pop(0), 1) if emb else None
        return TeacherOutput(out[0], embedding, dict(zip(self.taps, vals, strict=True)))

    def _chunked(self, x: torch.Tensor, fn: Any) -> list[torch.Tensor]:
        """``fn`` over ``x`` in chunks of the exported batch size (zero-padding the last one)."""
        b = self._batch
        if b is None or x.shape[0] == b:
            return list(fn(x))
        pieces: list[tuple[list[torch.Tensor], int]] = []
        for start in range(0, x.shape[0], b):
            chunk = x[start : start + b]
            n = chunk.shape[0]
            if n < b:
                chunk = torch.cat([chunk, chunk.new_zeros((b - n, *chunk.shape[1:]))])
            pieces.append((list(fn(chunk)), n))
        return [torch.cat([p[i][:n] for p, n in pieces]) for i in range(len(pieces[0][0]))]

    def _run_exported(self, x: torch.Tensor) -> TeacherOutput:
        emb, taps = self._tap_nodes()
        wanted = ([emb] if emb else []) + list(taps)

        def once(chunk: torch.Tensor) -> list[torch.Tensor]:
            captured: dict[str, torch.Tensor] = {}

            class _Recorder(torch.fx.Interpreter):
                def run_node(self, n: torch.fx.Node) -> Any:
                    result = super().run_node(n)
                    if n.name in wanted:
                        captured[n.name] = result
                    return result

            out = _Recorder(self._gm).run(chunk) if wanted else self._gm(chunk)
            logits = self.logits_of(pytree.tree_unflatten(pytree.tree_leaves(out), self._out_spec))
            return [logits, *[captured[w] for w in wanted]]

        vals = self._chunked(x, once)
        logits = vals.pop(0)
        embedding = torch.flatten(vals.pop(0), 1) if emb else None
        return TeacherOutput(logits, embedding, dict(zip(self.taps, vals, strict=True)))
