"""The calibration file beside a profile, and the per-device latency predictor that reads it.

``<profile>.calibration.json`` keeps every measurement (the student spec, runtime, precision,
measured median and spread) and the fit per ``runtime:precision``. Measurements store the
spec, not the features, so a later cost model re-derives features from the same models;
re-running ``calibrate`` appends measurements and refits on all of them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from edgecompress.artifacts import StudentSpec, atomic_write_text
from edgecompress.cost.predictor import FEATURES, Accuracy, fit, predict, prior_coefficients
from edgecompress.errors import CalibrationError, ConfigError
from edgecompress.profiles import DeviceProfile
from edgecompress.runtimes import list_runtimes

CALIBRATION_KIND = "latency_calibration"
CALIBRATION_SCHEMA = 1


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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Measurement:
        try:
            spec = StudentSpec.from_dict(d["spec"], where=f"{where}.spec")
            return cls(str(d["runtime"]), str(d["precision"]), spec, float(d["latency_ms"]), float(d["p90_ms"]),
                       float(d["std_ms"]), int(d["runs"]), str(d.get("measured_at", "")))
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
        if data.get("schema_version") != CALIBRATION_SCHEMA:
            raise CalibrationError(f"{path}: schema_version {data.get('schema_version')!r} is not supported "
                                   f"(allowed: {CALIBRATION_SCHEMA})")
        ms = [Measurement.from_dict(m, f"{path}: measurements[{i}]") for i, m in enumerate(data.get("measurements", []))]
        fits = data.get("fits", {})
        for key, f in fits.items():
            if not isinstance(f, dict) or set(f.get("coef", {})) != set(FEATURES):
                raise CalibrationError(f"{path}: fits.{key}: coefficients do not match this version's features; "
                                       "re-run edgecompress calibrate to refit")
        return cls(str(data.get("device", device)), str(data.get("hardware", "")), ms, fits)

    def save(self, path: Path) -> None:
        data = {"kind": CALIBRATION_KIND, "schema_version": CALIBRATION_SCHEMA, "device": self.device,
                "hardware": self.hardware, "updated_at": now_iso(), "fits": self.fits,
                "measurements": [m.to_dict() for m in self.measurements]}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    def refit(self, profile: DeviceProfile, keys: list[str] | None = None) -> dict[str, Accuracy]:
        """Refit every ``runtime:precision`` with measurements (or just ``keys``); returns LOO accuracy."""
        from edgecompress.cost.estimate import spec_cost

        groups: dict[str, list[Measurement]] = {}
        for m in self.measurements:
            groups.setdefault(runtime_key(m.runtime, m.precision), []).append(m)
        out: dict[str, Accuracy] = {}
        for key, ms in sorted(groups.items()):
            if keys is not None and key not in keys:
                continue
            precision = key.split(":")[1]
            feats = [spec_cost(m.spec).features for m in ms]
            f = fit(feats, [m.latency_ms for m in ms], prior_coefficients(profile.priors, precision))
            self.fits[key] = {"coef": f.coef, "lambda": f.lam, "n": f.n, "fitted_at": now_iso(),
                              "loo": dataclasses.asdict(f.loo)}
            out[key] = f.loo
        return out


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
        coef, _ = self.coefficients(runtime or self.profile.runtime.kind, precision)
        return predict(coef, features)

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
