"""Array formats: ``.npz`` files and CIFAR-10/100 python pickle batches from a local folder.

``.npz``: ``x`` is required; ``y`` (integer labels) for labeled data; ``class_names``
(strings) optional. ``x`` may be (N, H, W) gray, (N, H, W, C) NHWC or (N, C, H, W) NCHW with
C in {1, 3}; NHWC is assumed when the last axis is 1 or 3 and the second is not. dtype uint8
(0..255) or float: floats in [0, 1] are taken as unit scale, floats in [0, 255] as pixel scale;
both are rounded to uint8 so every source shares one pixel pipeline.

CIFAR: the "python version" archives unpacked: ``data_batch_1..5`` + ``test_batch`` +
``batches.meta`` (CIFAR-10) or ``train`` + ``test`` + ``meta`` with ``fine_labels``
(CIFAR-100). Pickles are read with an allow-list unpickler (plain containers and numpy
arrays only), so a malicious file cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.data.raw import RawData, check_labels, default_augment
from edgecompress.data.sources import ArraySource
from edgecompress.errors import DataError

# The most classes an .npz may declare or imply (ImageNet-21k has ~22k): a label beyond it is
# taken for corrupt data, not a task.
MAX_CLASSES = 100_000


def to_uint8_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """Accept the layouts and dtypes documented above; return uint8 (N, C, H, W)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3):
            raise DataError(f"{where}: x has shape {x.shape}; channels (1 or 3) must be axis 1 (NCHW) or 3 (NHWC)")
    else:
        raise DataError(f"{where}: x must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{where}: x holds no images")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        lo, hi = float(x.min()), float(x.max())
        if not np.isfinite([lo, hi]).all() or lo < 0 or hi > 255:
            raise DataError(f"{where}: x values span [{lo:g}, {hi:g}]; allowed: [0, 1] or [0, 255]")
        scale = 255.0 if np.issubdtype(x.dtype, np.floating) and hi <= 1.0 else 1.0
        return np.ascontiguousarray(np.round(x.astype(np.float32) * scale).astype(np.uint8))
    raise DataError(f"{where}: x has dtype {x.dtype}; allowed: uint8, integer or float")


def implied_classes(y: np.ndarray, where: str) -> int:
    """The class count labels imply without ``class_names`` (largest + 1), refused when it is
    absurd: one label of 10^9 must not make a billion classes, nor one of 1000 among 0..9
    silently make a 1001-class task."""
    if len(y) == 0:
        raise DataError(f"{where}: y holds no labels")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        check_labels(y, hi + 1, where)
    if hi >= MAX_CLASSES:
        i = int(np.argmax(y))
        raise DataError(f"{where}: label {hi} at index {i} is above the allowed maximum {MAX_CLASSES - 1} "
                        f"(save class_names to declare the classes, or relabel 0..K-1)")
    used = int(np.unique(y).size)
    if hi + 1 > 2 * used and hi + 1 - used > 1:
        i = int(np.argmax(y))
        raise DataError(f"{where}: label {hi} at index {i} implies {hi + 1} classes but only {used} distinct labels occur "
                        f"(save class_names to declare {hi + 1} classes, or relabel 0..{used - 1})")
    return hi + 1


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc or type(exc).__name__})") from None


def load_npz(path: Path, *, labeled: bool = True) -> RawData:
    z = read_npz(path)
    if "x" not in z:
        raise DataError(f"{path}: no array named 'x' (found: {', '.join(sorted(z)) or 'none'}); save with np.savez(path, x=..., y=...)")
    x = to_uint8_nchw(z["x"], str(path))
    if "y" not in z:
        if labeled:
            raise DataError(f"{path}: no labels 'y' (pass it as --unlabeled to use it without labels)")
        y = None
    else:
        y = np.asarray(z["y"]).reshape(-1)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y has dtype {y.dtype}; allowed: integer class indices")
        if len(y) != len(x):
            raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
        y = y.astype(np.int64)
    if "class_names" in z:
        names = tuple(str(s) for s in np.asarray(z["class_names"]).reshape(-1))
        if not 2 <= len(names) <= MAX_CLASSES:
            raise DataError(f"{path}: class_names holds {len(names)} names; allowed: 2 to {MAX_CLASSES}")
    elif y is not None:
        names = tuple(str(c) for c in range(implied_classes(y, str(path))))
    else:
        names = ()
    if y is not None:
        check_labels(y, len(names), str(path))
    shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    return RawData(
        name=path.stem,
        class_names=names,
        train=ArraySource(x, y),
        default_shape=shape,
        augment=default_augment(shape, flip=True),
    )


class _SafeUnpickler(pickle.Unpickler):
    # What the CIFAR pickles reference: numpy's array reconstruction and nothing else.
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            obj = _SafeUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: missing CIFAR file") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR python batch (expected a dict, got {type(obj).__name__})")
    # Files pickled by Python 2 have bytes keys; ones re-saved by Python 3 have str keys.
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _batch(path: Path, label_key: str, num_classes: int) -> ArraySource:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: CIFAR batch needs 'data' and {label_key!r} (found: {', '.join(sorted(d))})")
    data = np.asarray(d["data"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    if len(y) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(y)} labels")
    check_labels(y, num_classes, str(path))
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major 32x32 planes.
    return ArraySource(data.reshape(-1, 3, 32, 32), y)


def is_cifar_folder(root: Path) -> bool:
    return (root / "batches.meta").is_file() or ((root / "meta").is_file() and (root / "train").is_file())


def _names(values: Any) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def load_cifar(root: Path) -> RawData:
    if (root / "batches.meta").is_file():
        names = _names(_unpickle(root / "batches.meta").get("label_names", []))
        if not names:
            raise DataError(f"{root / 'batches.meta'}: no 'label_names'")
        batches = sorted(root.glob("data_batch_*"))
        if not batches:
            raise DataError(f"{root}: CIFAR-10 folder without data_batch_1..5")
        parts = [_batch(p, "labels", len(names)) for p in batches]
        train = ArraySource(np.concatenate([p.x for p in parts]), np.concatenate([p.labels for p in parts]))
        test = _batch(root / "test_batch", "labels", len(names))
        name = "cifar10"
    else:
        names = _names(_unpickle(root / "meta").get("fine_label_names", []))
        if not names:
            raise DataError(f"{root / 'meta'}: no 'fine_label_names'")
        train = _batch(root / "train", "fine_labels", len(names))
        test = _batch(root / "test", "fine_labels", len(names))
        name = "cifar100"
    shape = (3, 32, 32)
    return RawData(name=name, class_names=names, train=train, test=test, default_shape=shape, augment=default_augment(shape, flip=True))
