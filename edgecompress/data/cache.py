"""On-disk cache for generated data: ``$EDGECOMPRESS_CACHE`` (default ``~/.cache/edgecompress``).

Entries are keyed by a hash of everything that determines their content (generator version
and parameters), written atomically, and read back as read-only memory maps so a large
generated set is never copied into memory as a whole.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import atomic_write_bytes
from edgecompress.serde import fingerprint


def cache_root() -> Path:
    return Path(os.environ.get("EDGECOMPRESS_CACHE") or Path.home() / ".cache" / "edgecompress")


def cache_key(params: dict[str, Any]) -> str:
    return fingerprint(params)


def cached_arrays(
    namespace: str,
    params: dict[str, Any],
    make: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Return arrays from the cache entry for ``params``, creating it with ``make()`` if absent.

    Each array is one ``.npy`` file (memory-mappable); ``params.json`` is written last, so an
    entry without it is incomplete (an interrupted run) and is regenerated.
    """
    folder = cache_root() / namespace / cache_key(params)
    marker = folder / "params.json"
    if marker.is_file():
        try:
            names = json.loads(marker.read_text())["arrays"]
            return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in names}
        except (OSError, ValueError, KeyError):
            pass  # damaged entry: fall through and rebuild it
    arrays = make()
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr))
        atomic_write_bytes(folder / f"{name}.npy", buf.getbuffer().tobytes())
    atomic_write_bytes(marker, json.dumps({"params": params, "arrays": sorted(arrays)}, indent=1).encode())
    return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in arrays}
