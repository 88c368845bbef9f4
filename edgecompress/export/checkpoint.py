"""`export(checkpoint)`: rebuild the student and its data from a Checkpoint, then export it.

The student comes from its spec (``create_student``) plus the weights file next to the
checkpoint JSON, loaded with ``torch.load(weights_only=True)``; calibration and parity data
come from the checkpoint's ``DataRef`` with the checkpoint's own normalization, so the
exported files see exactly the inputs the student was trained on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import Checkpoint, ExportArtifact, sha256_file
from edgecompress.errors import ExportError
from edgecompress.export.api import export_module
from edgecompress.export.config import ExportConfig


def load_checkpoint(checkpoint: Checkpoint | str | os.PathLike[str], base_dir: Path | None = None) -> tuple[Checkpoint, Path]:
    """The Checkpoint and the folder its relative ``weights`` path is resolved against."""
    if isinstance(checkpoint, Checkpoint):
        return checkpoint, Path(base_dir) if base_dir else Path.cwd()
    path = Path(checkpoint)
    return Checkpoint.load(path), path.parent


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ExportError(f"{path}: checkpoint weights file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ExportError(f"{path}: .safetensors weights need the safetensors package (pip install safetensors)") from None
        return dict(load_file(str(path)))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types; all mean "not a plain state_dict"
        raise ExportError(f"{path}: not a weights-only state_dict ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ExportError(f"{path}: expected a state_dict (a mapping of tensor names to tensors), got {type(state).__name__}")
    return state


def load_student(ckpt: Checkpoint, base_dir: Path, teacher: Any = None, where: str = "checkpoint") -> Any:
    """Build the student from its spec and load the weights; a mismatch is one line."""
    from edgecompress.students import create_student, get_family

    if get_family(ckpt.spec.family).needs_teacher and teacher is None:
        raise ExportError(
            f"{where}: student family {ckpt.spec.family!r} is built from the teacher; pass teacher= (CLI: --teacher PATH)"
        )
    weights = (base_dir / ckpt.weights) if not Path(ckpt.weights).is_absolute() else Path(ckpt.weights)
    if ckpt.sha256 and weights.is_file() and sha256_file(weights) != ckpt.sha256:
        raise ExportError(f"{weights}: sha256 differs from the checkpoint's ({ckpt.sha256[:12]}...); the weights file was changed")
    state = _read_state_dict(weights)
    model = create_student(ckpt.spec, teacher)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise ExportError(
            f"{where}: weights {weights.name} do not match spec {ckpt.spec.family}/{ckpt.spec.arch}: {'; '.join(parts)}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


def _stack(dataset: Any, limit: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(dataset), limit)
    if n == 0:
        raise ExportError("export: the checkpoint's data has an empty calibration or validation split")
    xs, ys = zip(*(dataset[i] for i in range(n)), strict=True)
    return np.stack([np.asarray(x, np.float32) for x in xs]), np.asarray([int(y) for y in ys], np.int64)


def export(
    checkpoint: Checkpoint | str | os.PathLike[str],
    config: ExportConfig | None = None,
    out_dir: str | os.PathLike[str] = "export",
    *,
    teacher: Any = None,
    base_dir: Path | None = None,
    progress: bool | None = None,
) -> list[ExportArtifact]:
    """Export a distilled student: formats x precisions of ``config``, each parity-checked.

    ``teacher`` is only needed for the ``pruned-teacher`` family (the pruned structure is
    derived from it). ``base_dir`` resolves a relative weights path when ``checkpoint`` is an
    in-memory object rather than a file.
    """
    config = config or ExportConfig()
    ckpt, base = load_checkpoint(checkpoint, base_dir)
    where = str(checkpoint) if not isinstance(checkpoint, Checkpoint) else "checkpoint"
    if ckpt.data is None:
        raise ExportError(f"{where}: has no data reference (field 'data'); use export_module() with your own arrays")
    model = load_student(ckpt, base, teacher, where)

    from edgecompress.data import load_task_ref

    pre = ckpt.preprocessing
    # Accuracy-aware int8 may calibrate on more images than plain PTQ: load them all up front.
    calib_size = max(config.calibration_size, config.calibration_pool_size if config.accuracy_aware else 0)
    task = load_task_ref(ckpt.data, calib_size=calib_size, mean=pre.mean, std=pre.std, pixel_scale=pre.pixel_scale,
                         channel_order=pre.channel_order, resize=pre.resize, norm_source=pre.source, progress=False)
    calib_x, _ = _stack(task.calibration, calib_size)
    # The split lists its images in index order, and a folder dataset is ordered by class: the
    # first `calibration_size` of a larger pool would see only the first classes. Shuffle
    # (deterministically) so every prefix is a uniform sample of the pool.
    calib_x = calib_x[np.random.default_rng(0).permutation(len(calib_x))]
    val_x, val_y = _stack(task.val, config.parity_samples)
    return export_module(
        model, pre, config, out_dir, calib_x, val_x, val_y, progress=progress, checkpoint_sha256=ckpt.sha256
    )
