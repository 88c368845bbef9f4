"""Built-in data: ``digits`` (scikit-learn's handwritten digits) and ``shapes`` (+ ``shapes-pool``).

Names may carry options, ``shapes:train=2000,val=500,test=500`` or
``shapes-pool:n=3000,ood=0.2``, so a small variant (tests, quick demos) is still one string
that :class:`~edgecompress.artifacts.DataRef` records and reloads identically.
"""

from __future__ import annotations

import numpy as np

from edgecompress.data import shapes
from edgecompress.data.cache import cached_arrays
from edgecompress.data.raw import RawData, default_augment
from edgecompress.data.sources import ArraySource
from edgecompress.errors import DataError

BUILTIN = ("digits", "shapes")
BUILTIN_POOLS = ("shapes-pool",)

# Default sizes: tens of thousands of images, generated in well under 30 s on one core.
SHAPES_DEFAULTS = {"train": 30000, "val": 5000, "test": 5000}
POOL_DEFAULTS: dict[str, float] = {"n": 30000, "ood": 0.2}

# digits are 8x8; served at 16x16 gray by default: enough room for a student with two or three
# stride-2 stages, and it keeps the 1-channel path of every stage exercised.
DIGITS_SHAPE = (1, 16, 16)
SHAPES_SHAPE = (3, 32, 32)


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """``"shapes:train=2000,test=500"`` -> ("shapes", {"train": "2000", "test": "500"})."""
    base, _, rest = name.partition(":")
    opts: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise DataError(f"{name!r}: option {part!r} must look like key=value")
        opts[key.strip()] = value.strip()
    return base, opts


def is_builtin(name: str) -> bool:
    return split_name(name)[0] in BUILTIN + BUILTIN_POOLS


def _options(name: str, opts: dict[str, str], defaults: dict[str, float], kind: type) -> dict[str, float]:
    out = dict(defaults)
    for key, value in opts.items():
        if key not in defaults:
            raise DataError(f"{name!r}: unknown option {key!r} (allowed: {', '.join(sorted(defaults))})")
        try:
            out[key] = kind(value) if key != "ood" else float(value)
        except ValueError:
            raise DataError(f"{name!r}: option {key}={value!r} is not a number") from None
    return out


def load_builtin(name: str, input_shape: tuple[int, int, int] | None, progress: bool = False) -> RawData:
    base, opts = split_name(name)
    if base == "digits":
        if opts:
            raise DataError(f"{name!r}: digits takes no options")
        return _digits(input_shape or DIGITS_SHAPE)
    if base == "shapes":
        sizes = _options(name, opts, SHAPES_DEFAULTS, int)
        return _shapes(sizes, input_shape or SHAPES_SHAPE, progress)
    raise DataError(f"unknown built-in data {base!r} (known: {', '.join(BUILTIN)})")


def _digits(shape: tuple[int, int, int]) -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 17 gray levels (0..16) -> 0..255, white digit on black as scikit-learn stores them.
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawData(
        name="digits",
        class_names=tuple(str(c) for c in range(10)),
        train=ArraySource(x, d.target.astype(np.int64)),
        default_shape=shape,
        augment=default_augment(shape, flip=False),
    )


def _gen_size(shape: tuple[int, int, int]) -> int:
    # Rendered square at the larger side; a non-square input shape is resized from it.
    return max(shape[1], shape[2])


def _shapes(sizes: dict[str, float], shape: tuple[int, int, int], progress: bool) -> RawData:
    size = _gen_size(shape)
    for key, n in sizes.items():
        if n < len(shapes.CLASSES):
            raise DataError(f"shapes: {key}={int(n)} is too small (at least {len(shapes.CLASSES)}, one per class)")

    def make(split: str, n: int) -> ArraySource:
        return _cached_shapes(split, n, size, 0.0, progress)

    return RawData(
        name="shapes",
        class_names=shapes.CLASSES,
        train=make("train", int(sizes["train"])),
        val=make("val", int(sizes["val"])),
        test=make("test", int(sizes["test"])),
        default_shape=shape,
        augment=default_augment(shape, flip=True),
    )


def load_builtin_pool(name: str, source_base: str, shape: tuple[int, int, int], progress: bool = False) -> ArraySource:
    """The shifted ``shapes-pool``; labels in the returned source are hidden labels (-1 = out of class)."""
    base, opts = split_name(name)
    if base not in BUILTIN_POOLS:
        raise DataError(f"unknown built-in pool {base!r} (known: {', '.join(BUILTIN_POOLS)})")
    if source_base != "shapes":  # also checked up front by load_task; kept for direct callers
        raise DataError(f"{base!r} is the unlabeled pool of 'shapes' and cannot pair with {source_base!r}")
    o = _options(name, opts, POOL_DEFAULTS, int)
    n, ood = int(o["n"]), float(o["ood"])
    if not 0.0 <= ood < 1.0:
        raise DataError(f"{name!r}: ood={ood} must be in [0, 1)")
    if n < 1:
        raise DataError(f"{name!r}: n={n} must be at least 1")
    return _cached_shapes("pool", n, _gen_size(shape), ood, progress)


def _cached_shapes(split: str, n: int, size: int, ood: float, progress: bool) -> ArraySource:
    # The generator seed is fixed: the data set is one fixed data set; load_task's seed only
    # changes which images are labeled.
    params = {"version": shapes.GENERATOR_VERSION, "split": split, "n": n, "size": size, "ood": ood, "seed": 0}

    def make() -> dict[str, np.ndarray]:
        x, y = shapes.generate(split, n, size, 0, ood_fraction=ood, progress=progress)
        return {"x": x, "y": y}

    arrays = cached_arrays("shapes", params, make)
    return ArraySource(arrays["x"], np.asarray(arrays["y"]))
