"""The common shape every data source is read into before splitting and transforming."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np

from edgecompress.data.sources import Source
from edgecompress.data.transforms import Augment
from edgecompress.errors import DataError


class DataWarning(UserWarning):
    """Something in the data was skipped or adjusted (unreadable files, mixed sizes)."""


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


@contextlib.contextmanager
def recorded_warnings(notes: list[str]) -> Iterator[None]:
    """Append every DataWarning raised inside to ``notes`` and still emit it once, so the
    report can list what was skipped while a caller still sees (or filters) the warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        yield
    for w in caught:
        if issubclass(w.category, DataWarning):
            notes.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@dataclasses.dataclass
class RawData:
    """A labeled source read from disk or generated, before splits and transforms.

    ``val`` / ``test`` are set where the format defines them (CIFAR's test batch, the built-in
    sets); otherwise they are carved out of ``train``.
    """

    name: str
    class_names: tuple[str, ...]
    train: Source
    default_shape: tuple[int, int, int]
    augment: Augment
    val: Source | None = None
    test: Source | None = None


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """One-line DataError for a label outside [0, num_classes)."""
    if labels.size == 0:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where}: label {int(labels[i])} at index {i} is outside the class range 0..{num_classes - 1} "
            f"({len(bad)} such label(s))"
        )


def default_augment(shape: tuple[int, int, int], flip: bool) -> Augment:
    # 4 px of padding at 32x32 (the usual CIFAR recipe), scaled with the image side.
    return Augment(crop_pad=max(1, min(shape[1], shape[2]) // 8), flip=flip)
