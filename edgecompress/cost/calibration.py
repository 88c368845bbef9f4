"""The calibration file beside a profile, and the per-device latency predictor that reads it.

``<profile>.calibration.json`` keeps every measurement (the student spec, runtime, precision,
measured median and spread), the kernel samples and kernel fit per ``runtime:precision`` where
the runtime times kernels apart (``kernels.py``), and the whole-model fit with its 90%
prediction interval. Measurements store the spec, not the features, so a later cost model
re-derives features from the same models; re-running ``calibrate`` appends measurements and
refits on all of them.

Schema 1 files (before kernel calibration and the separate ``add`` kernel type) still load:
their fits predicted residual adds with the elementwise coefficients, so those are copied to
the ``add_*`` terms, which reproduces their predictions exactly; they carry no interval.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecompress.artifacts import StudentSpec, atomic_write_text
from edgecompress.cost.estimate import (
    CHANNEL_BLOCKS,
    GENERIC_MACS,
    PADDING_CHOICES,
    PADDING_RULES,
    UNPADDED,
    layout_key,
)
from edgecompress.cost.predictor import (
    FEATURES,
    INTERVAL_LEVEL,
    Accuracy,
    PriorOf,
    fit,
    predict,
    prior_coefficients,
)
from edgecompress.errors import CalibrationError, ConfigError
from edgecompress.profiles import DeviceProfile
from edgecompress.runtimes import get_runtime, list_runtimes

CALIBRATION_KIND = "latency_calibration"
CALIBRATION_SCHEMA = 2
_READABLE_SCHEMAS = (1, 2)
# A kernel-fitted coefficient of 0 would pin the whole-model fit's coefficient at 0 (it scales
# by its prior): floor each at this share of the profile's prior.
_PRIOR_FLOOR = 0.05


def runtime_key(runtime: str, precision: str) -> str:
    return f"{runtime}:{precision}"


def parse_runtime_key(text: str, where: str = "--runtime") -> tuple[str, str]:
    """``onnxruntime-cpu:fp32`` -> (runtime, precision), rejected with the allowed values."""
    runtime, _, precision = text.partition(":")
    if runtime not in list_runtimes() or precision not in ("fp32", "int8"):
        raise CalibrationError(f"{where}: {text!r} is not allowed (allowed: RUNTIME:PRECISION with RUNTIME in "
                               f"{', '.join(list_runtimes())} and PRECISION in fp32, int8)")
    return runtime, precision


@dataclasses.dataclass(frozen=True)
class Measurement:
    runtime: str
    precision: str
    spec: StudentSpec
    latency_ms: float  # median over counted runs
    p90_ms: float
    std_ms: float
    runs: int
    measured_at: str = ""
    peak_mem_mb: float | None = None  # peak RSS over the runtime's baseline, fresh process
    round_p50_ms: tuple[float, ...] = ()  # the median of each interleaved round: the run-to-run noise

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Measurement:
        try:
            spec = StudentSpec.from_dict(d["spec"], where=f"{where}.spec")
            mem = d.get("peak_mem_mb")
            return cls(str(d["runtime"]), str(d["precision"]), spec, float(d["latency_ms"]), float(d["p90_ms"]),
                       float(d["std_ms"]), int(d["runs"]), str(d.get("measured_at", "")), None if mem is None else float(mem),
                       tuple(float(v) for v in d.get("round_p50_ms", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{where}: malformed measurement ({exc})") from None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclasses.dataclass
class Calibration:
    """Measurements and fits for one device profile."""

    device: str
    hardware: str = ""
    measurements: list[Measurement] = dataclasses.field(default_factory=list)
    fits: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    kernels: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # key -> kernel fit + samples
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # device time, governor, temperatures

    @classmethod
    def load(cls, path: Path, device: str) -> Calibration:
        if not path.exists():
            return cls(device)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{path}: cannot read calibration ({exc}); delete it to start again") from None
        if not isinstance(data, dict) or data.get("kind") != CALIBRATION_KIND:
            raise CalibrationError(f"{path}: not a latency calibration file (kind must be {CALIBRATION_KIND!r})")
        version = data.get("schema_version")
        if version not in _READABLE_SCHEMAS:
            raise CalibrationError(f"{path}: schema_version {version!r} is not supported "
                                   f"(allowed: {', '.join(map(str, _READABLE_SCHEMAS))})")
        ms = [Measurement.from_dict(m, f"{path}: measurements[{i}]") for i, m in enumerate(data.get("measurements", []))]
        fits = data.get("fits", {})
        rules = sorted({"none", *PADDING_RULES})
        for key, f in fits.items():
            if version == 1 and isinstance(f, dict) and isinstance(f.get("coef"), dict):
                f["coef"].update({f"add_{q}": f["coef"].get(f"elem_{q}", 0.0) for q in ("macs", "mem", "n")})
            if isinstance(f, dict) and isinstance(f.get("coef"), dict) and GENERIC_MACS not in f["coef"]:
                # Files before the generic-path term: every layout they used has no such MACs.
                f["coef"][GENERIC_MACS] = float(f["coef"].get("conv_macs", 0.0))
            if not isinstance(f, dict) or set(f.get("coef", {})) != set(FEATURES):
                raise CalibrationError(f"{path}: fits.{key}: coefficients do not match this version's features; "
                                       "re-run edgecompress calibrate to refit")
            if f.get("padding", "io") not in rules:
                raise CalibrationError(f"{path}: fits.{key}.padding = {f['padding']!r}: choose one of {', '.join(rules)}")
            if type(f.get("channel_block", 1)) is not int or f.get("channel_block", 1) < 1:
                raise CalibrationError(f"{path}: fits.{key}.channel_block = {f['channel_block']!r}: a whole number >= 1")
        kernels = data.get("kernels", {}) if version >= 2 else {}
        meta = data.get("meta", {}) if version >= 2 else {}
        if not isinstance(kernels, dict) or not isinstance(meta, dict):
            raise CalibrationError(f"{path}: 'kernels' and 'meta' must be tables; re-run edgecompress calibrate")
        return cls(str(data.get("device", device)), str(data.get("hardware", "")), ms, fits, kernels, meta)

    def save(self, path: Path) -> None:
        data = {"kind": CALIBRATION_KIND, "schema_version": CALIBRATION_SCHEMA, "device": self.device,
                "hardware": self.hardware, "updated_at": now_iso(), "meta": self.meta, "fits": self.fits,
                "kernels": self.kernels, "measurements": [m.to_dict() for m in self.measurements]}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    def refit(self, profile: DeviceProfile, keys: list[str] | None = None, prior: str | None = None,
              paddings: Sequence[tuple[int, str]] | None = None) -> dict[str, Accuracy]:
        """Refit every ``runtime:precision`` with measurements (or just ``keys``); returns LOO accuracy.

        The whole-model fit is pulled towards the kernel fit or towards the profile's priors,
        whichever predicts the left-out probes better (leave-one-out RMSPE, jointly with the
        convs' channel padding: block and rule). ``prior`` fixes the choice instead, for a
        benchmark's comparisons: ``"kernels"`` (where kernels were measured) or ``"profile
        priors"`` (the whole-model fit alone, the strongest simple baseline); ``paddings``
        replaces the (block, rule) choices, by default ``padding_choices(key)``. History: with the earlier probe design
        (each (family, depth) probed in a narrow width band) that choice was made on
        unrepresentative probes and the kernel prior was fixed instead; with probes across every
        combination's whole width range, leave-one-out over them estimates the held-out error
        again (docs/students-and-cost.md)."""
        from edgecompress.cost.estimate import spec_cost

        if prior not in (None, "kernels", "profile priors"):
            raise ValueError(f"prior = {prior!r}: choose None (leave-one-out), 'kernels' or 'profile priors'")

        groups: dict[str, list[Measurement]] = {}
        for m in self.measurements:
            groups.setdefault(runtime_key(m.runtime, m.precision), []).append(m)
        out: dict[str, Accuracy] = {}
        for key, ms in sorted(groups.items()):
            if keys is not None and key not in keys:
                continue
            precision = key.split(":")[1]
            feats = [spec_cost(m.spec).features for m in ms]
            measured = [m.latency_ms for m in ms]
            # The kernel prior is tied to the whole probes inside each leave-one-out fold
            # (prior_of), so its leave-one-out is as honest as the plain one. How the runtime pads
            # convs' channels (block and rule) is not known in advance: the padding whose fit
            # predicts left-out probes best (RMSPE) is kept.
            sources = ["profile priors"]
            if self.kernels.get(key, {}).get("coef") and prior != "profile priors":
                sources = ["kernels"] if prior == "kernels" else ["kernels", "profile priors"]  # first: kept on a tie
            choices = padding_choices(key) if paddings is None else paddings
            candidates = [(src, b, r, layout_key(b, r)) for src in sources for b, r in choices]
            source, block, rule, f = min(((src, b, r, fit(feats, measured, self._prior_of(profile, key, precision, feats,
                                                                                         measured, lay, src), lay))
                                          for src, b, r, lay in candidates), key=lambda t: t[3].loo.rmspe)
            q = f.interval_halfwidth(measured)
            self.fits[key] = {"coef": f.coef, "lambda": f.lam, "n": f.n, "fitted_at": now_iso(), "channel_block": block,
                              "padding": rule, "prior": source,
                              "loo": dataclasses.asdict(f.loo),
                              "interval": {"level": INTERVAL_LEVEL, "halfwidth": q if math.isfinite(q) else None,
                                           "method": "split conformal on leave-one-out relative residuals"}}
            mem = memory_fit(ms)
            if mem is not None:
                self.fits[key]["memory"] = mem
            out[key] = f.loo
        return out

    def _prior_of(self, profile: DeviceProfile, key: str, precision: str, features: list[dict[str, float]],
                  measured: list[float], layout: str, source: str) -> PriorOf:
        """The prior as a function of the probes a fit may use (``predictor.fit``'s ``prior``)."""
        if source != "kernels":
            base = prior_coefficients(profile.priors, precision)
            return lambda _idx: base

        def of(idx: Sequence[int]) -> dict[str, float]:
            return self.prior(profile, key, precision, [features[i] for i in idx], [measured[i] for i in idx], layout)

        return of

    def prior(self, profile: DeviceProfile, key: str, precision: str, features: list[dict[str, float]] | None = None,
              measured: list[float] | None = None, layout: str = UNPADDED) -> dict[str, float]:
        """What the whole-model fit pulls towards: the kernel fit where there is one, else the priors.

        The kernel fit is first tied to the unprofiled whole probes by three numbers fitted on
        them: ``measured = s x kernels - d x kernel count + c``. The profiler adds its own
        bookkeeping to every node it times (``d``, ~1-3 us per kernel here: small models are
        overstated by up to 30%), and ``c`` is the per-inference term no kernel accounts for."""
        base = prior_coefficients(profile.priors, precision)
        kern = self.kernels.get(key, {}).get("coef")
        if not kern:
            return base
        out = {k: max(float(kern.get(k, 0.0)), _PRIOR_FLOOR * base[k]) for k in FEATURES}
        if features and measured:
            s, d, c = tie_to_whole_models({**out, "const": 0.0}, features, measured, layout)
            for k in FEATURES:
                out[k] = out[k] * s - (d if k.endswith("_n") else 0.0)
                out[k] = max(out[k], _PRIOR_FLOOR * base[k])
            out["const"] = max(c, _PRIOR_FLOOR * base["const"])
        return out


def tie_to_whole_models(kernel_coef: dict[str, float], features: list[dict[str, float]],
                        measured: list[float], layout: str = UNPADDED) -> tuple[float, float, float]:
    """(s, d, c) of ``measured = s x kernel sum - d x kernel count + c``, least squares on relative
    error, s in [0.5, 2], d >= 0, c >= 0."""
    import numpy as np
    from scipy.optimize import lsq_linear

    ks = np.array([predict(kernel_coef, f, layout) for f in features])
    n = np.array([sum(v for k, v in f.items() if k.endswith("_n")) for f in features])
    y = np.asarray(measured, float)
    a = np.stack([ks, -n, np.ones_like(ks)], axis=1) / y[:, None]
    sol = lsq_linear(a, np.ones_like(y), bounds=([0.5, 0.0, 0.0], [2.0, np.inf, np.inf]))
    s, d, c = (float(v) for v in sol.x)
    return s, d, c


def padding_choices(key: str) -> tuple[tuple[int, str], ...]:
    """The (channel block, rule) pairs calibration chooses from for ``runtime:precision``: the
    general ones and the rules the runtime declares for that precision."""
    runtime, precision = key.split(":")
    extra = get_runtime(runtime).padding_rules.get(precision, ())
    return (*PADDING_CHOICES, *((b, r) for r in extra for b in CHANNEL_BLOCKS))


def layout_label(fit_entry: dict[str, Any]) -> str:
    """A stored fit's conv layout for people: "16, out" (block, rule), or "none" (unpadded)."""
    block = int(fit_entry.get("channel_block", 1))
    return f"{block}, {fit_entry.get('padding', 'io')}" if block > 1 else "none"


def fit_layout(fit_entry: dict[str, Any]) -> str:
    """The feature layout a stored fit was made with: its channel block and padding rule (files
    written before the rules existed padded the "io" way)."""
    rule = str(fit_entry.get("padding", "io"))
    block = int(fit_entry.get("channel_block", 1))
    return layout_key(block, rule) if block > 1 else UNPADDED


def memory_x_mb(cost: Any, precision: str, runtime: str | None = None) -> float:
    """The peak-RAM model's variable part in MB: 2 x the model file (mapped + the runtime's packed
    copy of the weights; its format's file when ``runtime`` is given) + peak activations by
    liveness (see ``select``)."""
    from edgecompress.cost.estimate import BYTES_PER_ELEM, size_for

    fmt = None if runtime is None else get_runtime(runtime).artifact_format
    return (2 * size_for(cost.size_bytes, precision, fmt) + cost.peak_activation_elems * BYTES_PER_ELEM[precision]) / (1024 * 1024)


def memory_fit(ms: list[Measurement]) -> dict[str, float] | None:
    """measured peak = a + b * (2 x file + activations), least squares over the probes that report a
    peak; replaces the runtime's assumed fixed overhead once measured. None with fewer than 3."""
    import numpy as np

    from edgecompress.cost.estimate import spec_cost

    pts = [(memory_x_mb(spec_cost(m.spec), m.precision, m.runtime), m.peak_mem_mb) for m in ms if m.peak_mem_mb]
    if len(pts) < 3:
        return None
    b, a = np.polyfit([x for x, _ in pts], [y for _, y in pts], 1)
    return {"a_mb": float(a), "b": float(b), "n": len(pts)}


class LatencyPredictor:
    """Predicted latency of a model on one device, per runtime and precision."""

    def __init__(self, profile: DeviceProfile, calibration: Calibration | None = None) -> None:
        self.profile = profile
        self.calibration = calibration or Calibration(profile.name)

    @classmethod
    def for_profile(cls, profile: DeviceProfile) -> LatencyPredictor:
        try:
            cal = Calibration.load(profile.calibration_path, profile.name)
        except ConfigError as exc:
            raise CalibrationError(str(exc)) from None
        if profile.hardware.detect and cal.hardware and cal.hardware != profile.hardware.soc:
            # `host` means whatever machine runs this: a fit measured on another CPU does not apply.
            cal = Calibration(profile.name, cal.hardware, cal.measurements, {})
        return cls(profile, cal)

    def coefficients(self, runtime: str, precision: str) -> tuple[dict[str, float], str]:
        """(coefficients, source) where source is 'calibrated (n=...)' or 'priors'."""
        f = self.calibration.fits.get(runtime_key(runtime, precision))
        if f:
            return dict(f["coef"]), f"calibrated (n={f['n']})"
        return prior_coefficients(self.profile.priors, precision), "priors"

    def predict(self, features: dict[str, float], runtime: str | None = None, precision: str = "fp32") -> float:
        rt = runtime or self.profile.runtime.kind
        coef, _ = self.coefficients(rt, precision)
        return predict(coef, features, fit_layout(self.calibration.fits.get(runtime_key(rt, precision)) or {}))

    def interval_halfwidth(self, runtime: str, precision: str) -> float | None:
        """Relative half-width q of the calibrated 90% interval ``[p (1 - q), p (1 + q)]``; None
        without one (priors, a schema-1 file, or too few probes for a finite interval)."""
        f = self.calibration.fits.get(runtime_key(runtime, precision)) or {}
        q = (f.get("interval") or {}).get("halfwidth")
        return None if q is None else float(q)

    def upper(self, features: dict[str, float], runtime: str, precision: str) -> float | None:
        """The upper end of the 90% prediction interval in ms, or None without an interval."""
        q = self.interval_halfwidth(runtime, precision)
        return None if q is None else self.predict(features, runtime, precision) * (1.0 + q)

    def ram_mb(self, cost: Any, runtime: str, precision: str) -> float | None:
        """Peak RAM in MB from the calibrated memory fit (measured peaks), or None without one."""
        m = (self.calibration.fits.get(runtime_key(runtime, precision)) or {}).get("memory")
        return None if not m else float(m["a_mb"]) + float(m["b"]) * memory_x_mb(cost, precision, runtime)

    def deploy_precisions(self) -> list[str]:
        """The profile's precisions, calibrated ones first-class: if any precision of the profile's
        runtime is calibrated, uncalibrated ones are not trusted to undercut it."""
        rt = self.profile.runtime.kind
        precs = list(self.profile.runtime.precisions)
        calibrated = [p for p in precs if runtime_key(rt, p) in self.calibration.fits]
        return calibrated or precs

    def best(self, features: dict[str, float]) -> tuple[str, float]:
        """(precision, predicted ms) of the fastest precision on the profile's runtime."""
        rt = self.profile.runtime.kind
        return min(((p, self.predict(features, rt, p)) for p in self.deploy_precisions()), key=lambda t: t[1])
