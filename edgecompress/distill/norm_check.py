"""Preflight: does the teacher see its inputs the way it was trained to?

A wrong normalization does not crash anything: the teacher just gets worse (99.7% -> 91.5%
measured on a teacher trained with ``(x - 0.5) / 0.5`` fed data statistics), and every soft
label the student learns from degrades silently. Before training, the teacher's accuracy on
labeled images is measured with the preprocessing in force and with the common alternatives
(the data's statistics, 0.5/0.5, the ImageNet values, raw 0-1 and raw 0-255 pixels; for colour
images in RGB and BGR order; ties go to the first listed, the simplest). When one is clearly
better, the build stops with one line naming it and the options that select it -- or, with
``--auto-normalize``, takes it and says so.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import torch

from edgecompress.errors import TeacherError
from edgecompress.preprocess_options import PRESETS, PreprocessOptions

SAMPLES = 256  # labeled (+ validation) images the check runs on
MIN_GAIN_PT = 3.0  # "clearly better": at least this many points, and beyond sampling noise


@dataclasses.dataclass(frozen=True)
class NormCheck:
    """The check's outcome: accuracy with the preprocessing in force and with each alternative."""

    samples: int
    current: dict[str, Any]  # {"label", "acc"}
    candidates: list[dict[str, Any]]  # [{"label", "flags", "acc"}], best first
    better: PreprocessOptions | None  # a clearly better setting, or None

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "current": self.current, "candidates": self.candidates,
                "better": None if self.better is None else self.better.flags()}


def _raw_images(task: Any, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """Up to ``n`` labeled then validation images as RGB floats in [0, 1] at the input size."""
    from edgecompress.artifacts import Preprocessing
    from edgecompress.data.transforms import Pipeline

    pre = task.preprocessing
    plain = Pipeline(Preprocessing(pre.input_shape, (0.0,) * pre.input_shape[0], (1.0,) * pre.input_shape[0], resize=pre.resize))
    xs: list[torch.Tensor] = []
    ys: list[int] = []
    for split in (task.labeled, task.val):
        if split is None:
            continue
        rng = np.random.default_rng(0)
        for i in rng.permutation(len(split))[: n - len(xs)]:
            j = int(split.indices[int(i)])
            xs.append(plain.raw(split.source.image(j)))
            ys.append(int(split.source.labels[j]))
        if len(xs) >= n:
            break
    return (torch.stack(xs) if xs else torch.empty(0)), np.asarray(ys)


def _apply(u: torch.Tensor, opts: PreprocessOptions, data_stats: tuple[Any, Any]) -> torch.Tensor:
    """``u`` (RGB in [0, 1]) preprocessed as ``opts`` says."""
    x = u * (255.0 if opts.pixel_range == "0-255" else 1.0)
    if opts.channel_order == "bgr" and x.shape[1] == 3:
        x = x.flip(1)
    ms = opts.mean_std()
    if ms is None:  # the data's statistics, in these units and order
        scale = 255.0 if opts.pixel_range == "0-255" else 1.0
        mean, std = (torch.as_tensor(v) * scale for v in data_stats)
        if opts.channel_order == "bgr" and x.shape[1] == 3:
            mean, std = mean.flip(0), std.flip(0)
    else:
        mean, std = torch.as_tensor(ms[0]), torch.as_tensor(ms[1])
    c = x.shape[1]
    mean = mean.expand(c) if mean.numel() == 1 else mean
    std = std.expand(c) if std.numel() == 1 else std
    if mean.numel() != c:  # a 3-channel preset on gray images: its channel average
        mean, std = mean.mean().expand(c), std.mean().expand(c)
    return (x - mean.view(1, -1, 1, 1).float()) / std.view(1, -1, 1, 1).float()


def _accuracy(teacher: Any, x: torch.Tensor, y: np.ndarray) -> float:
    preds = [teacher(x[i : i + 128]).logits.argmax(1) for i in range(0, len(x), 128)]
    return float((torch.cat(preds).numpy() == y).mean() * 100)


def _label(opts: PreprocessOptions) -> str:
    if opts.mean is not None and opts.std is not None:
        norm = f"mean {','.join(f'{m:g}' for m in opts.mean)} / std {','.join(f'{s:g}' for s in opts.std)}"
    else:
        norm = "data statistics" if opts.normalize in (None, "data") else f"{opts.normalize} normalization"
    return f"{norm}, pixels {opts.pixel_range or '0-1'}, {(opts.channel_order or 'rgb').upper()}"


def check_normalization(teacher: Any, task: Any, in_force: PreprocessOptions, *, samples: int = SAMPLES) -> NormCheck:
    """Teacher accuracy with ``in_force`` vs the common alternatives, on real labeled images."""
    u, y = _raw_images(task, samples)
    if len(u) == 0:
        return NormCheck(0, {"label": _label(in_force), "acc": None}, [], None)
    flat = u.transpose(0, 1).reshape(u.shape[1], -1)
    data_stats = (flat.mean(1), flat.std(1).clamp_min(1e-6))
    pre = task.preprocessing  # exactly what training will use (data statistics over more images)
    exact = PreprocessOptions(mean=pre.mean, std=pre.std, pixel_range="0-255" if pre.pixel_scale == 1.0 else "0-1",
                              channel_order=pre.channel_order)
    current = {"label": _label(in_force), "acc": round(_accuracy(teacher, _apply(u, exact, data_stats), y), 2)}
    orders = ("rgb", "bgr") if u.shape[1] == 3 else ("rgb",)
    rows = []
    # Pixel range changes nothing for data statistics and the scaled presets: only raw pixels differ.
    settings = [(n, "0-1") for n in ("data", *PRESETS)] + [("unit", "0-255")]
    for (norm, rng), order in itertools.product(settings, orders):
        alt = PreprocessOptions(normalize=norm, pixel_range=rng, channel_order=order, source="preflight check")
        rows.append((alt, round(_accuracy(teacher, _apply(u, alt, data_stats), y), 2)))
    rows.sort(key=lambda r: -r[1])
    best, best_acc = rows[0]
    p = max(min(current["acc"] / 100, 1 - 1 / len(y)), 1 / len(y))
    noise = 2 * 100 * math.sqrt(p * (1 - p) / len(y))  # two standard errors of the current accuracy
    better = best if best_acc - current["acc"] >= max(MIN_GAIN_PT, noise) else None
    cands = [{"label": _label(o), "flags": o.flags(), "acc": a} for o, a in rows]
    return NormCheck(len(y), current, cands, better)


def mismatch_error(check: NormCheck, where: str) -> TeacherError:
    """The one line for a clearly better normalization (when --auto-normalize is off)."""
    best = check.candidates[0]
    return TeacherError(
        f"{where}: the teacher scores {check.current['acc']:.1f}% on {check.samples} labeled images with the preprocessing "
        f"in force ({check.current['label']}) but {best['acc']:.1f}% with {best['label']}: pass {best['flags']} "
        f"(or --auto-normalize to take it)"
    )
