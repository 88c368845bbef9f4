"""The state one export run shares between its providers.

Several targets build on the same intermediate (every ONNX recipe and the TFLite converter
start from the fp32 ONNX graph; one onnx2tf run writes all TFLite precisions at once), so the
context computes each intermediate once, on first request, inside a private work directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgecompress.artifacts import Preprocessing
from edgecompress.export.config import ExportConfig

T = TypeVar("T")

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclasses.dataclass
class ExportContext:
    model: Any  # torch.nn.Module in eval mode (typed loosely: this module must not need torch)
    preprocessing: Preprocessing
    config: ExportConfig
    work_dir: Path
    calib_x: np.ndarray  # (N, C, H, W) float32, normalized per `preprocessing`
    # More calibration images (a superset of calib_x) for accuracy-aware int8; None = calib_x.
    calib_pool: np.ndarray | None = None
    # The parity set's images: QAT measures how closely the int8 file follows the fine-tuned
    # model on them (a measurement recorded in the manifest, never a training signal).
    parity_x: np.ndarray | None = None
    _memo: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.calib_x.shape[1:])  # type: ignore[return-value]

    @property
    def pool(self) -> np.ndarray:
        return self.calib_x if self.calib_pool is None else self.calib_pool

    def once(self, key: str, fn: Callable[[], T]) -> T:
        """Compute ``fn()`` the first time ``key`` is asked for; reuse it afterwards."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]  # type: ignore[no-any-return]
