"""`load_task`: any data source -> a :class:`TaskData` with labeled / unlabeled / val / test /
calibration Datasets and the exact preprocessing they use."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from edgecompress.artifacts import DataRef, Preprocessing
from edgecompress.data import builtin
from edgecompress.data.arrays import is_cifar_folder, load_cifar, load_npz, read_npz, to_uint8_nchw
from edgecompress.data.datasets import SplitDataset
from edgecompress.data.folders import IMAGE_EXTS, load_flat_folder, load_image_folder
from edgecompress.data.raw import RawData, recorded_warnings
from edgecompress.data.sources import ArraySource, Source
from edgecompress.data.splits import check_fraction, holdout, stratified_take
from edgecompress.data.transforms import CHANNEL_ORDERS, RESIZE_MODES, Augment, Pipeline, channel_stats
from edgecompress.errors import DataError

STATS_SAMPLE = 2048  # images used to compute normalization statistics


@dataclasses.dataclass
class TaskData:
    """Everything the trainer, exporter and report need to know about the data.

    Datasets yield ``(x float32 (C, H, W) normalized, y int64)``; unlabeled ones yield y = -1.
    ``unlabeled`` is the pool and/or the labels-dropped rest of the training set;
    ``unlabeled_pool`` / ``unlabeled_rest`` are the two parts on their own. Their
    ``hidden_labels`` are for measurement only. ``notes`` lists what was skipped or adjusted
    while reading (unreadable files, mixed sizes), for the report.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    preprocessing: Preprocessing
    data_ref: DataRef
    labeled: SplitDataset
    unlabeled: Dataset | None
    val: SplitDataset
    test: SplitDataset
    calibration: SplitDataset
    augment: Augment
    unlabeled_pool: SplitDataset | None = None
    unlabeled_rest: SplitDataset | None = None
    notes: tuple[str, ...] = ()


def _check_shape(shape: object) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DataError(f"input_shape={shape!r} must be three integers (C, H, W), e.g. 3x32x32") from None
    if c not in (1, 3) or h < 4 or w < 4 or h > 4096 or w > 4096:
        raise DataError(f"input_shape={shape!r}: channels must be 1 or 3 and H, W between 4 and 4096")
    return c, h, w


def _resolve_path(source: str | Path, role: str) -> Path:
    path = Path(source).expanduser()
    if path.exists():
        return path
    text = str(source)
    if "/" not in text and "\\" not in text and not path.suffix:
        known = ", ".join(builtin.BUILTIN + (builtin.BUILTIN_POOLS if role == "unlabeled" else ()))
        raise DataError(f"unknown {role} data {text!r}: not a built-in name (known: {known}) and no such file or folder")
    raise DataError(f"{path}: no such file or folder ({role} data)")


def read_source(source: str | Path, input_shape: tuple[int, int, int] | None, strict: bool, progress: bool) -> RawData:
    """Dispatch a built-in name or a path to its reader."""
    if isinstance(source, str) and builtin.is_builtin(source):
        return builtin.load_builtin(source, input_shape, progress)
    path = _resolve_path(source, "labeled")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; allowed: a .npz file, an image folder or a CIFAR folder")
    if not any(path.iterdir()):
        raise DataError(f"{path}: the folder is empty; expected {path}/<class>/<image> or CIFAR batch files")
    if is_cifar_folder(path):
        return load_cifar(path)
    return load_image_folder(path, strict=strict, progress=progress)


def check_unlabeled(unlabeled: str | Path, source: str | Path) -> Path | None:
    """Cheap up-front check of ``unlabeled`` (before a long read of the labeled source);
    returns its path, or None for a built-in pool."""
    if isinstance(unlabeled, str) and builtin.is_builtin(unlabeled):
        base = builtin.split_name(unlabeled)[0]
        if base not in builtin.BUILTIN_POOLS:
            raise DataError(f"--unlabeled {unlabeled!r}: built-in pools are {', '.join(builtin.BUILTIN_POOLS)}")
        src_base = builtin.split_name(str(source))[0]
        if src_base != "shapes":
            raise DataError(f"{base!r} is the unlabeled pool of 'shapes' and cannot pair with {src_base!r}")
        return None
    return _resolve_path(unlabeled, "unlabeled")


def read_unlabeled(
    unlabeled: str | Path, raw: RawData, shape: tuple[int, int, int], strict: bool, progress: bool
) -> Source:
    path = check_unlabeled(unlabeled, raw.name)
    if path is None:
        return builtin.load_builtin_pool(str(unlabeled), raw.name, shape, progress)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"{path}: unsupported unlabeled file {path.suffix!r}; allowed: a folder of images or a .npz with 'x'")
        if "x" not in read_npz(path):
            raise DataError(f"{path}: no array named 'x'; save with np.savez(path, x=...)")
        # Labels in an unlabeled .npz are ignored on purpose: the pool is unlabeled by definition.
        return ArraySource(to_uint8_nchw(read_npz(path)["x"], str(path)))
    if not any(path.iterdir()):
        raise DataError(f"{path}: the unlabeled folder is empty; expected image files ({', '.join(IMAGE_EXTS)})")
    return load_flat_folder(path, shape[0], strict=strict, progress=progress)


def _stats(ds: SplitDataset, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(ds))[:STATS_SAMPLE])
    return channel_stats(ds.raw_batch(pick[i : i + 256]) for i in range(0, len(pick), 256))


def load_task(
    source: str | Path,
    *,
    unlabeled: str | Path | None = None,
    labeled_fraction: float = 1.0,
    seed: int = 0,
    input_shape: tuple[int, int, int] | None = None,
    strict: bool = False,
    calib_size: int = 256,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    augment: bool = True,
    progress: bool | None = None,
    pixel_scale: float = 1.0 / 255.0,
    channel_order: str = "rgb",
    resize: str = "bilinear",
    norm_source: str = "data",
    input_size: tuple[int, int] | None = None,
) -> TaskData:
    """Load a built-in task (``digits``, ``shapes[:opts]``) or a path (ImageFolder, ``.npz``,
    CIFAR folder) and split it.

    - val / test: the source's own held-out sets where it has them, else ~10% per class each,
      drawn with a fixed seed so they are the same whatever ``seed`` is;
    - labeled: a stratified ``labeled_fraction`` of the rest, drawn with ``seed``;
    - unlabeled: the ``unlabeled`` pool (a flat image folder, an ``.npz`` with ``x``, or
      ``shapes-pool[:opts]``) and the labels-dropped rest of the training set;
    - calibration: ``calib_size`` labeled images, no augmentation.

    Normalization statistics are ``mean``/``std`` if given (in the units ``pixel_scale`` and
    ``channel_order`` give, see :class:`~edgecompress.artifacts.Preprocessing`; ``norm_source``
    records where they came from), else computed from up to 2048 labeled images. Raises :class:`DataError` (one line) for any bad input, before any long
    work where the problem can be seen up front.
    """
    fraction = check_fraction(labeled_fraction)
    if isinstance(calib_size, bool) or not isinstance(calib_size, int) or calib_size < 1:
        raise DataError(f"calib_size={calib_size!r} must be a positive integer")
    shape_arg = _check_shape(input_shape) if input_shape is not None else None
    show = sys.stderr.isatty() if progress is None else progress
    if unlabeled is not None:
        check_unlabeled(unlabeled, source)

    notes: list[str] = []
    with recorded_warnings(notes):
        raw = read_source(source, shape_arg, strict, show)
    shape = shape_arg or raw.default_shape
    if input_size is not None:  # the teacher's (H, W); the data's channel count stays
        shape = _check_shape((shape[0], *input_size))
    num_classes = len(raw.class_names)
    if num_classes < 2:
        raise DataError(f"{source}: found {num_classes} class; a classification task needs at least 2")

    train_idx = np.arange(len(raw.train))
    if raw.test is None:
        test_idx, train_idx = holdout(raw.train.labels, train_idx, str(source))
        test_src: Source = raw.train
    else:
        test_src, test_idx = raw.test, np.arange(len(raw.test))
    if raw.val is None:
        val_idx, train_idx = holdout(raw.train.labels, train_idx, str(source))
        val_src: Source = raw.train
    else:
        val_src, val_idx = raw.val, np.arange(len(raw.val))
    rng = np.random.default_rng(seed)
    lab_idx, rest_idx = stratified_take(raw.train.labels, train_idx, fraction, rng)

    aug = raw.augment if augment else Augment()
    if channel_order not in CHANNEL_ORDERS or resize not in RESIZE_MODES or not pixel_scale > 0:
        raise DataError(f"channel_order={channel_order!r} / resize={resize!r} / pixel_scale={pixel_scale!r}: allowed "
                        f"{'|'.join(CHANNEL_ORDERS)}, {'|'.join(RESIZE_MODES)}, a positive scale")
    fmt = {"pixel_scale": float(pixel_scale), "channel_order": channel_order, "resize": resize}
    plain = Preprocessing(input_shape=shape, mean=(0.0,) * shape[0], std=(1.0,) * shape[0], **fmt)  # type: ignore[arg-type]
    if mean is None or std is None:
        mean, std = _stats(SplitDataset(raw.train, lab_idx, Pipeline(plain)), seed)
        norm_source = "data"
    mean, std = tuple(mean), tuple(std)
    if len(mean) == 1 and len(std) == 1:  # one value for every channel (--normalize half)
        mean, std = mean * shape[0], std * shape[0]
    if len(mean) != shape[0] or len(std) != shape[0] or min(std) <= 0:
        raise DataError(f"mean={tuple(mean)} / std={tuple(std)}: need {shape[0]} values each, std > 0")
    pre = Preprocessing(input_shape=shape, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                        source=norm_source, **fmt)  # type: ignore[arg-type]
    pipe = Pipeline(pre, aug)

    labeled = SplitDataset(raw.train, lab_idx, pipe, train=True)
    calib = SplitDataset(raw.train, np.sort(rng.permutation(lab_idx)[:calib_size]), pipe)
    rest = SplitDataset(raw.train, rest_idx, pipe, train=True, hide_labels=True) if len(rest_idx) else None
    pool = None
    if unlabeled is not None:
        with recorded_warnings(notes):
            pool_src = read_unlabeled(unlabeled, raw, shape, strict, show)
        pool = SplitDataset(pool_src, np.arange(len(pool_src)), pipe, train=True, hide_labels=True)
    parts = [d for d in (pool, rest) if d is not None]
    unlab: Dataset | None = parts[0] if len(parts) == 1 else (ConcatDataset(parts) if parts else None)

    ref = DataRef(
        source=str(source),
        unlabeled=None if unlabeled is None else str(unlabeled),
        labeled_fraction=fraction,
        seed=int(seed),
        input_shape=shape,
    )
    return TaskData(
        name=raw.name,
        num_classes=num_classes,
        class_names=tuple(raw.class_names),
        input_shape=shape,
        preprocessing=pre,
        data_ref=ref,
        labeled=labeled,
        unlabeled=unlab,
        val=SplitDataset(val_src, val_idx, pipe),
        test=SplitDataset(test_src, test_idx, pipe),
        calibration=calib,
        augment=aug,
        unlabeled_pool=pool,
        unlabeled_rest=rest,
        notes=tuple(notes),
    )


def load_task_ref(ref: DataRef, **kwargs: object) -> TaskData:
    """Reload exactly the task a :class:`DataRef` describes (export calibration, parity checks)."""
    return load_task(
        ref.source,
        unlabeled=ref.unlabeled,
        labeled_fraction=ref.labeled_fraction,
        seed=ref.seed,
        input_shape=ref.input_shape,
        **kwargs,  # type: ignore[arg-type]
    )

