"""Raw image sources: where pixels come from before any transform.

A source is a sized, indexable collection of uint8 (C, H, W) images at their native size and
channel count, with one integer label each (-1 where there is none). Two kinds cover every
input format: :class:`ArraySource` (built-in data, ``.npz``, CIFAR batches; the array may be
a read-only memory map of an on-disk cache) and :class:`FileSource` (image files decoded
lazily through Pillow, only when an item is asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgecompress.errors import DataError


class Source(Protocol):
    labels: np.ndarray  # int64 (N,), -1 = no label
    channels: int

    def __len__(self) -> int: ...

    def image(self, i: int) -> np.ndarray:
        """uint8 (C, H, W) at the native size."""
        ...


class ArraySource:
    """Images held in (or memory-mapped from) a uint8 (N, C, H, W) array."""

    def __init__(self, x: np.ndarray, labels: np.ndarray | None = None) -> None:
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ValueError(f"ArraySource needs uint8 (N, C, H, W), got {x.dtype} {x.shape}")
        self.x = x
        self.labels = np.full(len(x), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        self.channels = int(x.shape[1])

    def __len__(self) -> int:
        return len(self.x)

    def image(self, i: int) -> np.ndarray:
        # np.array copies out of a memory map, so torch never holds a view of a read-only file.
        return np.array(self.x[i])


class FileSource:
    """Image files decoded on demand (png/jpg/webp/... through Pillow).

    ``channels`` fixes the decoded mode (1 -> "L", 3 -> "RGB") so every item has the same
    channel count whatever the file stores (palette, RGBA, CMYK, 16-bit gray).
    """

    def __init__(self, paths: list[Path], labels: np.ndarray | None, channels: int) -> None:
        self.paths = paths
        self.labels = np.full(len(paths), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        path = self.paths[i]
        try:
            arr = decode_image(path, self.channels)
        except (OSError, ValueError) as exc:
            # Every file was fully decoded once when the folder was scanned; failing now means
            # it changed on disk since then.
            raise DataError(f"{path}: cannot decode image ({exc}); was it modified after loading?") from None
        return arr


def decode_image(path: Path, channels: int) -> np.ndarray:
    """Decode one file to uint8 (C, H, W) with ``channels`` channels; raises OSError/ValueError."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))
