"""Seeded, stratified index splits."""

from __future__ import annotations

import math

import numpy as np

from edgecompress.errors import DataError

# Held-out val/test carved from a source that has none are drawn with this fixed seed, so every
# run on the same data — whatever its --seed — is evaluated on the same images.
HOLDOUT_SEED = 12345
HOLDOUT_FRACTION = 0.1


def check_fraction(value: float, name: str = "labeled_fraction") -> float:
    """(0, 1] or a one-line DataError."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}={value!r} is not a number; allowed: 0 < {name} <= 1") from None
    if isinstance(value, bool) or not math.isfinite(f) or not 0.0 < f <= 1.0:
        raise DataError(f"{name}={value!r} is outside (0, 1]; allowed: 0 < {name} <= 1, e.g. 0.1")
    return f


def stratified_take(
    labels: np.ndarray, indices: np.ndarray, fraction: float, rng: np.random.Generator, *, min_per_class: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (taken, rest): ``fraction`` of each class (at least
    ``min_per_class`` where the class has more than that), the rest keeps the others."""
    taken: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    lab = labels[indices]
    for k in np.unique(lab):
        idx = rng.permutation(indices[lab == k])
        n = len(idx)
        want = int(round(fraction * n))
        if n > min_per_class:
            want = max(want, min_per_class)
        want = min(want, n)
        taken.append(idx[:want])
        rest.append(idx[want:])
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)  # noqa: E731
    return cat(taken), cat(rest)


def holdout(labels: np.ndarray, indices: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(held_out, rest): ~10% per class for a val or test split (classes with < 3 images keep all)."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    lab = labels[indices]
    small = [int(k) for k in np.unique(lab) if (lab == k).sum() < 3]
    if len(small) == len(np.unique(lab)):
        raise DataError(f"{where}: too few images to hold out validation and test sets (need at least 3 per class)")
    keep_small = np.isin(lab, small)
    held, rest = stratified_take(labels, indices[~keep_small], HOLDOUT_FRACTION, rng)
    return held, np.sort(np.concatenate([rest, indices[keep_small]]))
