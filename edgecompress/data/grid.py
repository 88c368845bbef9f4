"""What a person looks at: a sizes/balance summary and a PNG grid of labeled vs unlabeled images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import atomic_write_bytes
from edgecompress.data.datasets import SplitDataset
from edgecompress.data.task import TaskData

MAX_ROWS = 12


def class_counts(ds: SplitDataset, num_classes: int) -> list[int]:
    labels = ds.targets
    return np.bincount(labels[labels >= 0], minlength=num_classes).tolist()


def describe(task: TaskData) -> dict[str, Any]:
    """Sizes, class balance and preprocessing as plain JSON-able data."""
    splits: dict[str, Any] = {}
    for name in ("labeled", "val", "test", "calibration"):
        ds: SplitDataset = getattr(task, name)
        splits[name] = {"n": len(ds), "per_class": class_counts(ds, task.num_classes)}
    for name in ("unlabeled_pool", "unlabeled_rest"):
        part: SplitDataset | None = getattr(task, name)
        splits[name] = {"n": len(part) if part is not None else 0}
    pool = task.unlabeled_pool
    if pool is not None and (pool.hidden_labels >= 0).any():
        hidden = pool.hidden_labels
        # Measurement only (built-in pools): how much of the pool belongs to no class at all.
        splits["unlabeled_pool"]["hidden_out_of_class"] = int((hidden < 0).sum())
    return {
        "name": task.name,
        "num_classes": task.num_classes,
        "class_names": list(task.class_names),
        "input_shape": list(task.input_shape),
        "preprocessing": task.preprocessing.to_dict(),
        "augment": {"crop_pad": task.augment.crop_pad, "flip": task.augment.flip},
        "data_ref": task.data_ref.to_dict(),
        "splits": splits,
        "unlabeled_total": len(task.unlabeled) if task.unlabeled is not None else 0,
    }


def _tile(ds: SplitDataset, i: int, scale: int) -> np.ndarray:
    x = ds.raw(int(i)).numpy()
    img = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img.repeat(scale, 0).repeat(scale, 1)


def _panel(ds: SplitDataset | None, rows: list[np.ndarray], cols: int, scale: int, h: int, w: int) -> np.ndarray:
    """A rows x cols mosaic; each row lists dataset indices (missing cells stay dark)."""
    pad = 2
    th, tw = h * scale + pad, w * scale + pad
    out = np.full((max(1, len(rows)) * th + pad, cols * tw + pad, 3), 24, np.uint8)
    if ds is None:
        return out
    for r, idx in enumerate(rows):
        for c, i in enumerate(idx[:cols]):
            out[pad + r * th : pad + r * th + h * scale, pad + c * tw : pad + c * tw + w * scale] = _tile(ds, i, scale)
    return out


def render_grid(task: TaskData, *, cols: int = 8, seed: int = 0, scale: int | None = None) -> Any:
    """PIL image: left, labeled images one class per row; right, the unlabeled images.

    A built-in pool's rows follow its hidden labels (last row: out-of-class images) so the
    style shift can be compared class by class; hidden labels are used for this display only.
    A user pool has no labels and is shown as a random sample.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    _, h, w = task.input_shape
    scale = scale or max(1, 96 // max(h, w))
    classes = list(range(task.num_classes))
    if len(classes) > MAX_ROWS:
        classes = sorted(rng.choice(classes, MAX_ROWS, replace=False).tolist())
    lab = task.labeled
    left_rows = [rng.permutation(np.flatnonzero(lab.targets == k))[:cols] for k in classes]

    unl = task.unlabeled_pool or task.unlabeled_rest
    if unl is None:
        right_rows: list[np.ndarray] = []
        right_title = "no unlabeled data"
    elif task.unlabeled_pool is not None and (unl.hidden_labels >= 0).any():
        hidden = unl.hidden_labels
        right_rows = [rng.permutation(np.flatnonzero(hidden == k))[:cols] for k in classes]
        right_rows.append(rng.permutation(np.flatnonzero(hidden < 0))[:cols])
        right_title = "unlabeled pool (rows by hidden label, last: out-of-class)"
    else:
        pick = rng.permutation(len(unl))[: cols * len(left_rows)]
        right_rows = [pick[i : i + cols] for i in range(0, len(pick), cols)]
        right_title = "unlabeled pool" if task.unlabeled_pool is not None else "unlabeled (rest of train)"

    left = _panel(lab, left_rows, cols, scale, h, w)
    right = _panel(unl, right_rows, cols, scale, h, w)
    label_w, head, gap = 90, 18, 16
    height = head + max(left.shape[0], right.shape[0])
    canvas = Image.new("RGB", (label_w + left.shape[1] + gap + right.shape[1], height), (255, 255, 255))
    canvas.paste(Image.fromarray(left), (label_w, head))
    canvas.paste(Image.fromarray(right), (label_w + left.shape[1] + gap, head))
    draw = ImageDraw.Draw(canvas)
    draw.text((label_w, 3), f"labeled: {task.name}", fill=(0, 0, 0))
    draw.text((label_w + left.shape[1] + gap, 3), right_title, fill=(0, 0, 0))
    row_h = (left.shape[0] - 2) / max(1, len(left_rows))
    names = [task.class_names[k][:14] for k in classes] + (["(no class)"] if len(right_rows) > len(classes) else [])
    for r, name in enumerate(names):
        draw.text((4, head + int(r * row_h + row_h / 2) - 5), name, fill=(0, 0, 0))
    return canvas


def save_grid(task: TaskData, path: str | Path, **kwargs: Any) -> Path:
    buf = io.BytesIO()
    render_grid(task, **kwargs).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
