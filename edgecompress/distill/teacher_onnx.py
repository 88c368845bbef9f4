"""An ONNX teacher, run by ONNX Runtime (logits, and the embedding as an extra graph output)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from edgecompress.distill.teacher import Teacher, TeacherOutput
from edgecompress.errors import TeacherError


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
        self._out_names = [o.name for o in graph.output]
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
        emb_extra = self._emb_name is not None and self._emb_name not in self._out_names
        names = self._out_names + ([self._emb_name] if emb_extra else [])
        arr = x.detach().cpu().float().numpy()
        if self._batch is not None and arr.shape[0] != self._batch:
            outs = _fixed_batch(lambda a: self._sess.run(names, {self._in_name: a}), arr, self._batch)
        else:
            outs = self._sess.run(names, {self._in_name: arr})
        values = dict(zip(names, (torch.from_numpy(o) for o in outs), strict=True))
        logits = self.logits_of({n: values[n] for n in self._out_names})
        emb = torch.flatten(values[self._emb_name], 1) if self._emb_name else None
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
