"""The resumable training state: everything needed to continue a run bit-for-bit.

Saved atomically at the end of every epoch (student, adapters and discriminators, both
optimizers, the scheduler, RNG states, epoch counter, best-so-far and the config fingerprint)
and read back with ``weights_only=True`` -- so RNG states are stored as plain lists, not as
pickled numpy objects.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecompress.artifacts import atomic_write_bytes
from edgecompress.errors import DistillError


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged state file is the user's to delete, not a crash
        raise DistillError(f"{path}: cannot read the training state ({str(exc).splitlines()[0][:160]}); delete it to start over") from None


def save_weights(path: Path, module: torch.nn.Module) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
