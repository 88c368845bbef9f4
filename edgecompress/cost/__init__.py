"""Cost model: graph costs, peak memory by liveness, file sizes, calibrated latency predictor.

    estimate_cost(model, input_shape) -> CostEstimate
    model_cost(model, input_shape) -> ModelCost (per-layer table, kernel features)

Importing this package does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_cost", "model_cost", "spec_cost"]


def __getattr__(name: str) -> Any:  # lazy: keep `import edgecompress.cost` light
    if name in __all__:
        from edgecompress.cost import estimate

        return getattr(estimate, name)
    raise AttributeError(name)
