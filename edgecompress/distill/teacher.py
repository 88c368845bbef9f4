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

The *embedding* is the pooled pre-classifier feature (what the ANC discriminator sees). When
no tap name is given it is found automatically as the input of the last ``Linear`` (last
``aten.linear`` / ``Gemm`` / ``MatMul`` in a graph). Named taps are module names
(``named_modules()``), checked up front with the nearest names suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

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

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> TeacherOutput:
        out = self._run(x)
        return TeacherOutput(out.logits.float(), None if out.embedding is None else out.embedding.float(), out.taps)

    def probe(self, input_shape: tuple[int, int, int]) -> TeacherOutput:
        """Run on two zero images of ``input_shape``; a teacher that cannot is a user error."""
        declared = self.input_shape
        if declared is not None and tuple(declared) != tuple(input_shape):
            raise TeacherError(
                f"{self.path}: teacher input size {_shape(declared)} disagrees with the data's {_shape(input_shape)}"
            )
        try:
            return self(torch.zeros(2, *input_shape))
        except TeacherError:
            raise
        except Exception as exc:  # any failure here means the shapes do not fit this teacher
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TeacherError(
                f"{self.path}: teacher cannot run on the data's input size {_shape(input_shape)} ({first[:200]})"
            ) from None


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(str(int(v)) for v in s)


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
            logits = self._module(x)
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
            return TeacherOutput(self._module(x), torch.flatten(emb, 1), {})
        return TeacherOutput(self._module(x), None, {})


# --------------------------------------------------------------------------- torch.export


class ExportedTeacher(Teacher):
    """A ``torch.export`` program. Taps read graph values by their ``nn_module_stack`` owner."""

    format = "pt2"

    def __init__(self, ep: torch.export.ExportedProgram, path: Path) -> None:
        super().__init__(path)
        # The program was captured in whatever mode it was exported in; its module() refuses
        # .eval()/.train(), and BN/dropout behaviour is already baked into the graph.
        self._gm = ep.module()
        nodes = list(self._gm.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise TeacherError(f"{path}: the exported program takes {len(placeholders)} inputs; a teacher takes one image batch")
        val = placeholders[0].meta.get("val")
        shape = tuple(getattr(val, "shape", ()))
        self._input_shape = tuple(int(s) for s in shape[1:]) if len(shape) == 4 and all(
            isinstance(s, int) or str(s).isdigit() for s in shape[1:]
        ) else None
        # A program exported with a concrete batch size (the torch.export default) only runs
        # that batch: _run then feeds it in chunks, zero-padding the last one.
        self._batch = int(shape[0]) if len(shape) == 4 and (isinstance(shape[0], int) or str(shape[0]).isdigit()) else None
        # owner module name -> the last graph node computed inside it (its output)
        self._owner_last: dict[str, Any] = {}
        linear_inputs = []
        for n in nodes:
            if n.op != "call_function":
                continue
            for qualname, _type in (n.meta.get("nn_module_stack") or {}).values():
                if qualname:
                    self._owner_last[qualname] = n
            target = str(n.target)
            if "aten.linear" in target:
                linear_inputs.append(n.args[0])
            elif "aten.addmm" in target:
                linear_inputs.append(n.args[1])
        self._auto_emb = linear_inputs[-1] if linear_inputs else None
        from edgecompress.distill.demo_teacher import eager_twin

        self._eager = eager_twin(path)

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        return self._input_shape  # type: ignore[return-value]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._gm.parameters())

    @property
    def module(self) -> nn.Module | None:
        """The eager module when this is a cached demo teacher (prunable), else None: an
        exported program's graph module refuses .eval()/.train(), so it can be neither
        channel-pruned nor fine-tuned into a student (the other families still apply)."""
        return self._eager

    def feature_names(self) -> list[str]:
        return sorted(self._owner_last)

    @property
    def has_embedding(self) -> bool:
        return self._auto_emb is not None or self.embedding_tap is not None

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        b = self._batch
        if b is None or x.shape[0] == b:
            return self._run_once(x)
        outs = []
        for start in range(0, x.shape[0], b):
            chunk = x[start : start + b]
            n = chunk.shape[0]
            if n < b:
                chunk = torch.cat([chunk, chunk.new_zeros((b - n, *chunk.shape[1:]))])
            outs.append((self._run_once(chunk), n))
        first = outs[0][0]
        return TeacherOutput(
            torch.cat([o.logits[:n] for o, n in outs]),
            None if first.embedding is None else torch.cat([o.embedding[:n] for o, n in outs]),  # type: ignore[index]
            {k: torch.cat([o.taps[k][:n] for o, n in outs]) for k in first.taps},
        )

    def _run_once(self, x: torch.Tensor) -> TeacherOutput:
        want = {name: self._owner_last[name] for name in self.taps}
        emb_node = self._owner_last[self.embedding_tap] if self.embedding_tap else self._auto_emb
        if not want and emb_node is None:
            return TeacherOutput(self._gm(x), None, {})
        wanted_nodes = {n: key for key, n in want.items()}
        captured: dict[str, torch.Tensor] = {}

        class _Recorder(torch.fx.Interpreter):
            def run_node(self, n: torch.fx.Node) -> Any:
                result = super().run_node(n)
                if n in wanted_nodes:
                    captured[wanted_nodes[n]] = result
                if n is emb_node:
                    captured["__emb__"] = result
                return result

        out = _Recorder(self._gm).run(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        emb = captured.get("__emb__")
        return TeacherOutput(logits, None if emb is None else torch.flatten(emb, 1), {k: captured[k] for k in want})


# --------------------------------------------------------------------------- ONNX


class OnnxTeacher(Teacher):
    """Forward through ONNX Runtime. The embedding is exposed by adding the input of the last
    Gemm/MatMul as an extra graph output; named taps are not available (say so up front)."""

    format = "onnx"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import onnx
        import onnxruntime as ort

        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise TeacherError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
        graph = model.graph
        inits = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise TeacherError(f"{path}: the ONNX model takes {len(inputs)} inputs; a teacher takes one image batch")
        dims = inputs[0].type.tensor_type.shape.dim
        self._input_shape = (
            tuple(int(d.dim_value) for d in dims[1:]) if len(dims) == 4 and all(d.dim_value > 0 for d in dims[1:]) else None
        )
        self._batch = int(dims[0].dim_value) if dims and dims[0].dim_value > 0 else None
        self._logits_name = graph.output[0].name
        heads = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
        self._emb_name = heads[-1].input[0] if heads else None
        if self._emb_name and self._emb_name not in {o.name for o in graph.output}:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(self._emb_name))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        try:
            self._sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TeacherError(f"{path}: ONNX Runtime cannot load the model ({str(exc).splitlines()[0][:200]})") from None
        self._in_name = inputs[0].name

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        return self._input_shape  # type: ignore[return-value]

    @property
    def has_embedding(self) -> bool:
        return self._emb_name is not None

    def _run(self, x: torch.Tensor) -> TeacherOutput:
        names = [self._logits_name] + ([self._emb_name] if self._emb_name else [])
        arr = x.detach().cpu().float().numpy()
        if self._batch is not None and arr.shape[0] != self._batch:
            outs = _fixed_batch(lambda a: self._sess.run(names, {self._in_name: a}), arr, self._batch)
        else:
            outs = self._sess.run(names, {self._in_name: arr})
        logits = torch.from_numpy(outs[0])
        emb = torch.flatten(torch.from_numpy(outs[1]), 1) if len(outs) > 1 else None
        return TeacherOutput(logits, emb, {})


def _fixed_batch(fn: Callable[[Any], list[Any]], arr: Any, batch: int) -> list[Any]:
    """Run a static-batch model over any batch size: chunks, zero-padding the last one."""
    import numpy as np

    pieces: list[list[Any]] = []
    n = arr.shape[0]
    for start in range(0, n, batch):
        chunk = arr[start : start + batch]
        pad = batch - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        pieces.append([o[: batch - pad] for o in fn(chunk)])
    return [np.concatenate([p[i] for p in pieces]) for i in range(len(pieces[0]))]


# --------------------------------------------------------------------------- entry point


def _import_factory(entry_point: str) -> Callable[[], nn.Module]:
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise TeacherError(f"entry point {entry_point!r} is not of the form 'package.module:factory'")
    try:
        mod = importlib.import_module(module_name)
    except ImportError as exc:
        raise TeacherError(f"entry point {entry_point!r}: cannot import {module_name!r} ({exc})") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise TeacherError(f"entry point {entry_point!r}: {module_name} has no callable {attr!r}")
    return factory


def load_teacher(path: str | Path, *, entry_point: str | None = None, trust_checkpoint: bool = False) -> Teacher:
    """Load a teacher from ``.pt2``, TorchScript, state_dict (+ ``entry_point``), pickled module
    (only with ``trust_checkpoint``) or ``.onnx``. Every failure is one TeacherError line."""
    p = Path(path)
    if not p.exists():
        raise TeacherError(f"{p}: teacher file not found")
    if not p.is_file():
        raise TeacherError(f"{p}: teacher path is not a file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
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
    model = _import_factory(entry_point)()
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        detail = " ".join(str(exc).split())[:300]
        raise TeacherError(f"{p}: state_dict does not fit {entry_point} ({first}: {detail})") from None
    return ModuleTeacher(model, p, "state_dict")
