"""Latency predictor: a sum of per-kernel-type terms, starting at the profile's priors, refitted.

    latency_ms = const + sum over kernel types t of (a_t * MACs_t + b_t * elements_t + c_t * count_t)

Kernel types are the fused kernels a CPU runtime actually runs (dense conv, pointwise conv,
depthwise conv, fully connected, residual add, and elementwise: mul / pool / unfused activations), so
each coefficient is a physical rate: a_t is 1 / achieved MAC throughput, b_t is bytes per
element / achieved bandwidth, c_t the per-kernel dispatch overhead. Before any measurement the
coefficients come from ``DeviceProfile.priors``; after kernel calibration (``cost/kernels.py``)
they come from per-kernel measurements, and the whole-model fit below pulls towards those.

The fit is non-negative least squares on *relative* errors (each model's row divided by its
measured latency, since ±10% is the target), plus ridge rows that pull each coefficient
towards its prior in relative terms: ``sqrt(lam) * (w_j / prior_j - 1)``. With ~20 coefficients
and ~30 probes the prior is what keeps rarely-exercised terms sane; ``lam`` is chosen by
leave-one-out over the probes (one-standard-error rule, see ``fit``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from edgecompress.cost.estimate import GENERIC_MACS, UNPADDED
from edgecompress.cost.layers import KERNEL_TYPES
from edgecompress.profiles import Priors

# GENERIC_MACS: convs a runtime runs on a slower generic path (a layout rule says which; zero
# under every other layout), with their own rate.
FEATURES = tuple(f"{t}_{q}" for t in KERNEL_TYPES for q in ("macs", "mem", "n")) + (GENERIC_MACS, "const")
# Up to 10: with kernel-fitted coefficients as the prior, a strong pull means "trust the kernels".
LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
INTERVAL_LEVEL = 0.9
BYTES_PER_ELEM = {"fp32": 4, "fp16": 2, "int8": 1}
# Depthwise and elementwise kernels are memory bound: assume a quarter of the dense MAC rate
# until calibration says otherwise.
_SLOW_KERNELS = {"dw": 4.0, "elem": 4.0, "add": 4.0}
# A generic im2col + GEMM path: ~3x the dense conv's time per MAC where it was profiled
# (estimate.py, rule "sym").
_GENERIC_SLOWDOWN = 3.0


def prior_coefficients(priors: Priors, precision: str) -> dict[str, float]:
    """Coefficients (ms per unit) implied by the profile's priors for one precision."""
    gmacs = {"fp32": priors.fp32_gmacs_per_s, "fp16": priors.fp16_gmacs_per_s, "int8": priors.int8_gmacs_per_s}[precision]
    ms_per_mac = 1e3 / (gmacs * 1e9)
    ms_per_elem = BYTES_PER_ELEM[precision] * 1e3 / (priors.memory_bandwidth_gb_per_s * 1e9)
    coef: dict[str, float] = {}
    for t in KERNEL_TYPES:
        coef[f"{t}_macs"] = ms_per_mac * _SLOW_KERNELS.get(t, 1.0)
        coef[f"{t}_mem"] = ms_per_elem
        # A floor keeps the ridge rows well defined for a profile that claims zero overhead.
        coef[f"{t}_n"] = max(priors.per_op_overhead_us, 0.01) / 1e3
    coef[GENERIC_MACS] = ms_per_mac * _GENERIC_SLOWDOWN
    coef["const"] = max(priors.per_inference_overhead_us, 0.1) / 1e3
    return coef


def feature_vector(features: dict[str, float], layout: str = UNPADDED) -> np.ndarray:
    """The features in ``FEATURES`` order; with a padded ``layout`` (``estimate.layout_key``) the
    channel-padded conv figures (the unpadded ones where a spec predates that layout)."""
    def get(k: str) -> float:
        return float(features.get(f"{k}@{layout}", features.get(k, 0.0)) if layout != UNPADDED else features.get(k, 0.0))

    return np.array([1.0 if k == "const" else get(k) for k in FEATURES])


def predict(coef: dict[str, float], features: dict[str, float], layout: str = UNPADDED) -> float:
    """Predicted latency in ms (``layout``: how the runtime pads convs' channels)."""
    return float(feature_vector(features, layout) @ np.array([coef[k] for k in FEATURES]))


def _solve(x: np.ndarray, y: np.ndarray, prior: np.ndarray, lam: float, relative: bool = True) -> np.ndarray:
    """Non-negative ridge fit, every coefficient scaled by its prior; errors relative to each
    row's ``y`` (whole models: the ±10% target), or absolute in units of the mean ``y``
    (kernels: what matters is the sum over a model's kernels, which the large ones dominate)."""
    from scipy.optimize import nnls

    # Substitute w = prior * u so every unknown is O(1).
    scale = 1.0 / y if relative else np.full_like(y, 1.0 / float(np.mean(y)))
    a = (x * prior) * scale[:, None]
    b = y * scale
    n = len(prior)
    a = np.vstack([a, math.sqrt(lam) * np.eye(n)])
    b = np.concatenate([b, math.sqrt(lam) * np.ones(n)])
    u, _ = nnls(a, b, maxiter=50 * n)
    return u * prior


@dataclasses.dataclass(frozen=True)
class Accuracy:
    n: int
    within_10pct: float  # share of models predicted within ±10%
    rmspe: float  # root mean squared percentage error, in %
    worst_abs_pct: float

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> Accuracy:
        p, m = np.asarray(predicted, float), np.asarray(measured, float)
        err = (p - m) / m * 100.0
        if len(err) == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(len(err), float(np.mean(np.abs(err) <= 10.0)), float(np.sqrt(np.mean(err**2))), float(np.max(np.abs(err))))


def conformal_halfwidth(relative_residuals: Sequence[float], level: float = INTERVAL_LEVEL) -> float:
    """Split-conformal half-width q of a ``level`` interval ``[p (1 - q), p (1 + q)]``.

    ``relative_residuals`` are (measured - predicted) / predicted of models the fit did not see
    (leave-one-out). The ceil((n + 1) level)-th smallest absolute residual covers a new model
    with probability >= level when models are exchangeable (Vovk et al.; Lei et al. 2018);
    with too few residuals for that rank the interval is unbounded (inf).
    """
    r = np.sort(np.abs(np.asarray(relative_residuals, float)))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 0 < k <= len(r) else float("inf")


@dataclasses.dataclass(frozen=True)
class Fit:
    coef: dict[str, float]
    lam: float
    n: int
    loo: Accuracy  # leave-one-out accuracy over the measured probes
    loo_predicted: tuple[float, ...] = ()  # the leave-one-out predictions at ``lam``, probe order

    def interval_halfwidth(self, measured: Sequence[float], level: float = INTERVAL_LEVEL) -> float:
        p = np.asarray(self.loo_predicted, float)
        return conformal_halfwidth((np.asarray(measured, float) - p) / p, level)


# A prior may depend on the probes themselves (the kernel fit tied to the whole probes): it is
# then a function of the probe indices it may use, so leave-one-out never sees the left-out one.
PriorOf = Callable[[Sequence[int]], dict[str, float]]


def fit(features: Sequence[dict[str, float]], latency_ms: Sequence[float], prior: dict[str, float] | PriorOf,
        layout: str = UNPADDED) -> Fit:
    """Fit coefficients to measurements; ``lam`` by leave-one-out, which is also reported.

    ``prior`` is a fixed dict, or a function of the training indices: each leave-one-out fold
    then builds its prior from the other probes only, and the final fit from all of them."""
    x = np.stack([feature_vector(f, layout) for f in features]) if features else np.zeros((0, len(FEATURES)))
    y = np.asarray(latency_ms, float)
    prior_of: PriorOf = prior if callable(prior) else (lambda _idx: prior)  # type: ignore[assignment,return-value]
    everyone = list(range(len(y)))
    p = np.array([prior_of(everyone)[k] for k in FEATURES])
    if len(y) == 0:
        return Fit(dict(zip(FEATURES, map(float, p), strict=True)), float("inf"), 0, Accuracy.of([], []))
    fold_priors = [np.array([prior_of([j for j in everyone if j != i])[k] for k in FEATURES]) for i in everyone]
    results: list[tuple[float, Accuracy, list[float]]] = []
    for lam in LAMBDAS:
        preds = []
        for i in everyone:
            keep = np.arange(len(y)) != i
            w = _solve(x[keep], y[keep], fold_priors[i], lam) if keep.any() else fold_priors[i]
            preds.append(float(x[i] @ w))
        results.append((lam, Accuracy.of(preds, y), preds))
    # One-standard-error rule (Hastie et al., ESL 7.10): the strongest pull towards the priors
    # whose leave-one-out share within ±10% is within one binomial standard error of the best.
    # With ~30 probes and ~20 coefficients the LOO estimate is noisy; among statistically tied
    # settings the more regularized one generalizes better.
    top = max(r[1].within_10pct for r in results)
    se = float(np.sqrt(max(top * (1 - top), 1e-12) / len(y)))
    best_lam, best_acc, best_preds = max((r for r in results if r[1].within_10pct >= top - se), key=lambda r: r[0])
    w = _solve(x, y, p, best_lam)
    return Fit(dict(zip(FEATURES, map(float, w), strict=True)), best_lam, len(y), best_acc, tuple(best_preds))
