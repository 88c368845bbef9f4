"""The frozen hand-off types between pipeline stages (stdlib only).

    DeviceProfile --select_student--> StudentSpec --distill--> Checkpoint
        --export--> [ExportArtifact, ...] --benchmark--> [BenchmarkResult, ...]
        --report--> BuildReport

Every type is a frozen dataclass with a JSON round trip (``to_json`` / ``from_json``,
``save`` / ``load``). Reading rejects unknown keys and wrong types with one line naming the
field, so a hand-edited or stale file fails loudly instead of half-loading. Files are written
atomically so an interrupted run never leaves a finished-looking artifact.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from edgecompress.errors import ConfigError

T = TypeVar("T", bound="Artifact")

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- serialization


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def finite(value: Any) -> Any:
    """``value`` with every NaN / inf float replaced by None: strict JSON has no such numbers,
    and a parser that rejects ``Infinity`` must still read every file a run writes."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes ``NaN`` / ``Infinity`` (see :func:`finite`)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Convert JSON ``value`` to type ``tp``; raise ConfigError naming ``where`` on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected null")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise ConfigError(f"{where} = {value!r} is not allowed (one of: {allowed})") from None
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        out = [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table/object, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _decode(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def _decode_dataclass(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, f in fields.items():
        sub = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{sub}: missing required key")
            continue
        kwargs[name] = _decode(hints[name], data[name], sub)
    return cls(**kwargs)


def read_toml(path: str | os.PathLike[str], error: type[Exception], what: str = "file") -> dict[str, Any]:
    """Parse a TOML file; any problem is one ``error`` line naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10 only
        import tomli as tomllib
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: malformed TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read ({exc})") from None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; artifacts are ordinary files, so honour the umask like open() does.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Artifact:
    """Mixin: JSON round trip for the frozen dataclasses below."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "schema_version": SCHEMA_VERSION, **_encode(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return strict_dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ConfigError(f"{where or cls.kind}: this is a {kind!r} file, expected {cls.kind!r}")
        has_field = any(f.name == "schema_version" for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        version = data.get("schema_version", SCHEMA_VERSION) if has_field else data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{where or cls.kind}: schema_version {version!r} is not supported (allowed: {SCHEMA_VERSION})"
            )
        return _decode_dataclass(cls, data, where)

    @classmethod
    def from_json(cls: type[T], text: str, where: str = "") -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where or cls.kind}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, where)

    def save(self, path: str | os.PathLike[str]) -> Path:
        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls: type[T], path: str | os.PathLike[str]) -> T:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read ({exc})") from None
        return cls.from_json(text, where=str(p))


# --------------------------------------------------------------------------- the hand-off types


@dataclasses.dataclass(frozen=True)
class Preprocessing(Artifact):
    """Exactly how raw pixels become the model input; export, parity and device runners reuse it.

    Raw RGB uint8 images are scaled by ``pixel_scale`` (1/255: values in [0, 1]; 1: in
    [0, 255]), converted to ``input_shape``'s channel count, put in ``channel_order`` ("rgb" or
    "bgr") and resized to ``input_shape`` with ``resize`` ("bilinear" or "nearest"); the model
    sees ``(x - mean[c]) / std[c]``, with mean/std in the scaled units and channel order.
    ``source`` says where mean/std came from (the data, the teacher's file, an option).
    """

    kind: ClassVar[str] = "preprocessing"
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "bilinear"
    pixel_scale: float = 1.0 / 255.0
    channel_order: str = "rgb"
    source: str = "data"


@dataclasses.dataclass(frozen=True)
class DataRef(Artifact):
    """Enough to reload the same data split in a later stage (export calibration, parity)."""

    kind: ClassVar[str] = "data_ref"
    source: str  # built-in name ("digits", "shapes") or a path
    unlabeled: str | None = None
    labeled_fraction: float = 1.0
    seed: int = 0
    input_shape: tuple[int, int, int] | None = None


@dataclasses.dataclass(frozen=True)
class CostEstimate(Artifact):
    kind: ClassVar[str] = "cost_estimate"
    macs: int
    params: int
    peak_activation_bytes: int
    size_bytes: dict[str, int]  # precision -> model file size estimate
    predicted_latency_ms: float | None = None
    runtime: str | None = None
    precision: str | None = None


@dataclasses.dataclass(frozen=True)
class StudentSpec(Artifact):
    """A student architecture as data: registry family + compact arch string."""

    kind: ClassVar[str] = "student_spec"
    family: str
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    width_mult: float = 1.0
    cost: CostEstimate | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Checkpoint(Artifact):
    """A trained student: weights file (relative to this JSON), spec, config, metrics."""

    kind: ClassVar[str] = "checkpoint"
    weights: str
    sha256: str
    spec: StudentSpec
    preprocessing: Preprocessing
    data: DataRef | None = None
    distill_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ParityReport(Artifact):
    kind: ClassVar[str] = "parity_report"
    n_samples: int
    top1_agreement: float
    acc_reference: float
    acc_artifact: float
    acc_delta_pt: float  # artifact minus reference, in percentage points
    max_abs_diff: float | None
    passed: bool
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    failures: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class InputSpec(Artifact):
    kind: ClassVar[str] = "input_spec"
    name: str
    shape: tuple[int, ...]
    dtype: str  # float32, int8, uint8
    layout: str  # NCHW or NHWC
    preprocessing: Preprocessing
    quant_scale: float | None = None
    quant_zero_point: int | None = None


@dataclasses.dataclass(frozen=True)
class QuantAttempt(Artifact):
    """One step of accuracy-aware int8 quantization and what it did to the parity numbers."""

    kind: ClassVar[str] = "quant_attempt"
    step: str  # ptq | calibration | sensitivity | mixed-precision
    description: str  # one line a person reads in the report
    settings: dict[str, Any]
    top1_agreement: float
    acc_delta_pt: float
    max_abs_diff: float | None
    size_bytes: int
    passed: bool
    float_share: float = 0.0  # share of the weights kept in float (the size cost of mixed precision)
    seconds: float = 0.0
    chosen: bool = False  # the attempt whose file the export kept (the best one)
    error: str | None = None  # the attempt could not be built or run (its numbers are then 0)


@dataclasses.dataclass(frozen=True)
class ExportArtifact(Artifact):
    kind: ClassVar[str] = "export_artifact"
    path: str
    format: str  # onnx | tflite
    precision: str  # fp32 | fp16 | dynamic-int8 | int8 | full-int8
    input: InputSpec
    size_bytes: int
    sha256: str
    op_counts: dict[str, int]
    parity: ParityReport | None = None
    export_s: float | None = None
    checkpoint_sha256: str | None = None
    log: str | None = None
    # int8 only: every quantization attempt, in order, when the first one missed the gate.
    attempts: tuple[QuantAttempt, ...] = ()


@dataclasses.dataclass(frozen=True)
class LatencyStats(Artifact):
    kind: ClassVar[str] = "latency_stats"
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no latency samples")
        s = sorted(samples_ms)
        n = len(s)
        mean = sum(s) / n
        var = sum((x - mean) ** 2 for x in s) / n

        def pct(q: float) -> float:
            # Linear interpolation between closest ranks (numpy's default), stdlib only.
            pos = (n - 1) * q
            lo = int(pos)
            hi = min(lo + 1, n - 1)
            return s[lo] + (s[hi] - s[lo]) * (pos - lo)

        return cls(mean, var**0.5, s[0], s[-1], pct(0.5), pct(0.9), pct(0.99))


@dataclasses.dataclass(frozen=True)
class DeviceState:
    """What the device reported about its own heat and clocks (empty where unreadable)."""

    temperatures_c: dict[str, float] = dataclasses.field(default_factory=dict)  # thermal zone -> C
    governors: dict[str, str] = dataclasses.field(default_factory=dict)  # cpuN -> governor
    freqs_mhz: dict[str, float] = dataclasses.field(default_factory=dict)  # cpuN -> current MHz
    raw: str = ""  # e.g. Android's `dumpsys thermalservice`, kept as printed


@dataclasses.dataclass(frozen=True)
class WindowStats:
    num_runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclasses.dataclass(frozen=True)
class SustainedStats:
    """A sustained run: latency over time, first window vs last window (bench --sustained)."""

    duration_s: float
    window_s: float  # 60 s for runs of 3 minutes or more, else a tenth of the run
    first: WindowStats
    last: WindowStats
    t_s: tuple[float, ...] = ()  # end of each time slice
    p50_ms: tuple[float, ...] = ()  # per slice
    p99_ms: tuple[float, ...] = ()
    sampled: bool = False  # the overall latency comes from a uniform sample of the runs

    @property
    def drift_p50_pct(self) -> float:
        return (self.last.p50_ms / self.first.p50_ms - 1.0) * 100.0 if self.first.p50_ms else 0.0

    @property
    def drift_p99_pct(self) -> float:
        return (self.last.p99_ms / self.first.p99_ms - 1.0) * 100.0 if self.first.p99_ms else 0.0


@dataclasses.dataclass(frozen=True)
class BenchmarkResult(Artifact):
    kind: ClassVar[str] = "benchmark_result"
    device: str
    runner: str  # local | adb | ssh
    runtime: str  # onnxruntime | litert | tflite_runtime | benchmark_model
    runtime_version: str
    artifact: str
    precision: str
    threads: int
    warmup_runs: int
    num_runs: int
    latency: LatencyStats
    init_ms: float | None = None
    first_inference_ms: float | None = None
    peak_mem_mb: float | None = None
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    samples_ms: tuple[float, ...] = ()
    raw_output: str | None = None  # path of the raw tool output kept beside the JSON
    op_profile: tuple[dict[str, Any], ...] = ()
    # Non-empty when the runner saw it ran under an emulator (qemu-user): then the latency is
    # the emulator's, not a device latency, and calibration refuses it.
    emulated: str = ""
    cooldown_s: float = 0.0
    state_before: DeviceState | None = None
    state_after: DeviceState | None = None
    sustained: SustainedStats | None = None
    # The parity gate re-run on this device's own kernels (build --host): XNNPACK's ARM int8
    # paths are different code from the x86 ones the export-time gate ran.
    device_parity: ParityReport | None = None


@dataclasses.dataclass(frozen=True)
class BuildReport(Artifact):
    kind: ClassVar[str] = "build_report"
    device: str
    spec: StudentSpec
    checkpoint: str
    artifacts: tuple[ExportArtifact, ...]
    benchmarks: tuple[BenchmarkResult, ...]
    report_html: str
    wall_s: float
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
