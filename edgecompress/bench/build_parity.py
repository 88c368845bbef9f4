"""The parity gate on the board (``build --host``): every artifact, on the device's kernels.

The export stage gated each artifact against eager PyTorch on this machine's runtimes. With a
board attached, the bench stage runs the same parity set through the board's runtimes and
applies the same rules (:func:`edgecompress.export.parity.compare`), so the report shows the
board's agreement and accuracy next to the host's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import BenchmarkResult, ExportArtifact, ParityReport
from edgecompress.bench.device_parity import device_logits, to_layout
from edgecompress.bench.runner import Runner
from edgecompress.errors import BenchError


def numeric_of(precision: str) -> str:
    """Which parity rules apply: the export recipes' ``numeric`` for this precision."""
    return {"fp32": "float32", "fp16": "float16"}.get(precision, "int8")


def parity_set(checkpoint: str | Path, samples: int, teacher: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs NCHW, labels, eager PyTorch logits): the export gate's parity set, rebuilt from
    the checkpoint's data reference exactly as the export stage loads it."""
    import torch

    from edgecompress.data import load_task_ref
    from edgecompress.export.checkpoint import load_checkpoint, load_student

    ckpt, base = load_checkpoint(checkpoint)
    model = load_student(ckpt, base, teacher, str(checkpoint))
    pre = ckpt.preprocessing
    if ckpt.data is None:
        raise BenchError(f"{checkpoint}: has no data reference (field 'data'): no parity set to run on the board")
    task = load_task_ref(ckpt.data, calib_size=1, mean=pre.mean, std=pre.std, pixel_scale=pre.pixel_scale,
                         channel_order=pre.channel_order, resize=pre.resize, norm_source=pre.source, progress=False)  # fmt: skip
    n = min(len(task.val), samples)
    xs, ys = zip(*(task.val[i] for i in range(n)), strict=True)
    x = np.stack([np.asarray(v, np.float32) for v in xs])
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(x[i : i + 64])) for i in range(0, n, 64)]).numpy().astype(np.float32)
    return x, np.asarray([int(y) for y in ys], np.int64), ref


def board_parity(
    results: Sequence[BenchmarkResult],
    artifacts: Sequence[ExportArtifact],
    runner: Runner,
    x: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    config: Any,
    log: Callable[[str], None] = lambda _m: None,
) -> list[BenchmarkResult]:
    """``results`` with ``device_parity`` filled on the board's entries (``runner.kind``)."""
    from edgecompress.export.parity import compare

    by_name = {Path(a.path).name: a for a in artifacts}
    out = []
    for r in results:
        art = by_name.get(Path(r.artifact).name)
        if r.runner != runner.kind or art is None:
            out.append(r)
            continue
        log(f"[bench] parity on {runner.device}: {Path(art.path).name} ({len(labels)} samples)")
        got = device_logits(runner, art.path, to_layout(x, art.input.layout))
        report: ParityReport = compare(reference, got.logits, labels, numeric_of(art.precision), config)
        out.append(dataclasses.replace(r, device_parity=report))
    return out
