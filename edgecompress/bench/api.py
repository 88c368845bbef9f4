"""``benchmark()``: one exported model, one device profile, one runner -> a BenchmarkResult.

Bad input (a missing file, an unknown format, zero runs, no host for an ssh board) is
rejected before anything is pushed or run. Results are saved as JSON with the raw tool output
beside them; a run that fails half-way leaves a ``.partial.json`` with what it measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from edgecompress.artifacts import BenchmarkResult, ExportArtifact, atomic_write_text
from edgecompress.bench.modelcheck import check_model_file
from edgecompress.bench.runner import BenchRunError, Measurement, Runner, RunRequest
from edgecompress.bounds import MAX_RUNS, MAX_THREADS, MAX_WARMUP, check_float, check_int
from edgecompress.errors import BenchError, EdgeCompressError
from edgecompress.export.formats import engine_of_suffix
from edgecompress.profiles import DeviceProfile, load_profile
from edgecompress.runners import get_runner, kinds_addressed_by

MAX_SECONDS = 86_400.0  # a day of counted runs
MAX_COOLDOWN_S = 3_600.0
EMULATED_NOTE = "emulated: latency is not a device latency"
# File-name tokens -> precision, for bare paths (an ExportArtifact says it outright). The
# tflite names are the ones onnx2tf writes (model_float32.tflite, model_full_integer_quant...).
_PRECISION_TOKENS = (
    ("full_integer_quant", "full-int8"),
    ("integer_quant", "int8"),
    ("dynamic_range_quant", "dynamic-int8"),
    ("float16", "fp16"),
    ("float32", "fp32"),
    ("int8", "int8"),
    ("fp16", "fp16"),
    ("fp32", "fp32"),
)


@dataclasses.dataclass(frozen=True)
class Target:
    """The model file to benchmark, with what is known about it."""

    path: Path
    format: str
    precision: str


def resolve_artifact(artifact: str | os.PathLike[str] | ExportArtifact) -> Target:
    """A path to .onnx / .tflite, an ExportArtifact, or an export_artifact .json file."""
    if isinstance(artifact, ExportArtifact):
        path, precision = Path(artifact.path), artifact.precision
    else:
        path = Path(artifact)
        if path.suffix.lower() == ".json":
            try:
                exported = ExportArtifact.load(path)
            except EdgeCompressError as exc:
                raise BenchError(f"{path}: not an export artifact ({exc})") from None
            model = Path(exported.path)
            return resolve_artifact(dataclasses.replace(exported, path=str(model if model.is_absolute() else path.parent / model)))
        precision = guess_precision(path)
    fmt = engine_of_suffix(path.suffix)  # the engine that loads it: onnx or tflite
    if fmt is None:
        raise BenchError(f"{path}: unsupported artifact (allowed: .onnx, .tflite, or an export_artifact .json)")
    if not path.is_file():
        raise BenchError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BenchError(f"{path}: file is empty (an interrupted export?)")
    check_model_file(path, fmt)  # a corrupt file is named here, not by a runtime's segfault
    return Target(path.resolve(), fmt, precision)


def guess_precision(path: Path) -> str:
    stem = path.stem.lower()
    for token, precision in _PRECISION_TOKENS:
        if token in stem:
            return precision
    return "unknown"


def check_numbers(
    threads: int | None, runs: int, warmup: int, max_seconds: float | None, sustained_s: float | None = None, cooldown_s: float = 0.0
) -> None:
    if threads is not None:
        check_int("threads", threads, 1, MAX_THREADS, BenchError)
    check_int("runs", runs, 1, MAX_RUNS, BenchError)
    check_int("warmup", warmup, 0, MAX_WARMUP, BenchError)
    if max_seconds is not None:
        check_float("max_seconds", max_seconds, 0.0, MAX_SECONDS, BenchError)
    if sustained_s is not None:
        check_float("sustained", sustained_s, 0.0, MAX_SECONDS, BenchError)
        if max_seconds is not None:
            raise BenchError("sustained and max_seconds cannot both be given (a sustained run lasts exactly its seconds)")
    if cooldown_s:
        check_float("cooldown", cooldown_s, 0.0, MAX_COOLDOWN_S, BenchError)


def make_runner(kind: str, profile: DeviceProfile, *, serial: str | None = None, host: str | None = None, **options: Any) -> Runner:
    """The runner a profile asks for, with serial / host from the arguments or the environment.

    ``options`` go to the runner's constructor (``remote_python``, ``ssh_config``,
    ``benchmark_model``, ``use_gpu``, ...).
    """
    spec = get_runner(kind)
    for value, flag in ((serial, "serial"), (host, "host")):
        if value and spec.target != flag:
            raise BenchError(f"{flag} {value!r} is for {' / '.join(kinds_addressed_by(flag))} devices; "
                             f"device {profile.name} is reached by {kind}")
    target = serial if spec.target == "serial" else host if spec.target == "host" else None
    runner: Runner = spec.load()(profile, target, options)
    return runner


def benchmark(
    artifact: str | os.PathLike[str] | ExportArtifact,
    device: str | DeviceProfile = "host",
    *,
    runner: str | Runner | None = None,
    serial: str | None = None,
    host: str | None = None,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    max_seconds: float | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    op_profiling: bool = False,
    json_path: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    sustained_s: float | None = None,
    cooldown_s: float = 0.0,
) -> BenchmarkResult:
    """Measure ``artifact`` on ``device`` and return (and, with ``out_dir``, save) the result.

    ``runner`` is a kind (``local`` / ``adb`` / ``ssh``; default: the profile's) or a
    configured :class:`Runner`. ``threads`` defaults to the profile's thread count, pinning
    follows the profile's ``cpu_mask``. ``runs`` counted runs after ``warmup`` warmup runs,
    stopping early once ``max_seconds`` have passed. With ``out_dir`` the result is saved as
    ``<model>.<device>.t<threads>.bench.json`` there; ``json_path`` names the file instead.
    The raw tool output goes beside it as ``.raw.txt``. ``progress``: a bar on stderr (None:
    only when stderr is a terminal). ``sustained_s``: run back to back that long and report
    latency over time (first vs last window) instead of counting ``runs``; ``cooldown_s``: idle
    that long on the device first (between artifacts). Device temperatures, governors and
    frequencies are read before and after where the device exposes them.
    """
    target = resolve_artifact(artifact)
    profile = device if isinstance(device, DeviceProfile) else load_profile(device)
    check_numbers(threads, runs, warmup, max_seconds, sustained_s, cooldown_s)
    threads = threads or profile.runtime.threads
    owned = not isinstance(runner, Runner)
    if not owned and (serial or host):
        raise BenchError("serial / host are for benchmark() to build a runner; give them to the Runner you pass instead")
    the_runner = runner if isinstance(runner, Runner) else make_runner(runner or profile.connection.runner, profile, serial=serial, host=host)
    if not the_runner.device:
        the_runner.device = profile.name
    request = RunRequest(
        model=target.path,
        threads=threads,
        warmup=warmup,
        runs=runs,
        max_seconds=max_seconds,
        cpu_mask=profile.runtime.cpu_mask,
        op_profiling=op_profiling,
        progress=progress,
        sustained_s=sustained_s,
        cooldown_s=cooldown_s,
    )
    if json_path is None and out_dir is not None:
        json_path = Path(out_dir) / f"{default_name(target.path, profile.name, threads)}.json"
    try:
        measured = the_runner.measure(request)
    except BenchRunError as exc:
        if json_path is None:
            raise
        raise exc.kept_in(save_partial(exc, target, profile.name, the_runner.kind, Path(json_path))) from None
    finally:
        if owned:
            the_runner.close()
    result = to_result(measured, target, profile, the_runner.kind)
    if json_path is not None:
        result = save_result(result, measured.raw_text, json_path)
    return result


def default_name(model: Path, device: str, threads: int) -> str:
    return f"{model.stem}.{device}.t{threads}.bench"


def to_result(m: Measurement, target: Target, profile: DeviceProfile, runner_kind: str) -> BenchmarkResult:
    env = dict(m.environment)
    env.setdefault("profile", profile.name)
    env.setdefault("format", target.format)
    if profile.runtime.cpu_mask:
        env.setdefault("cpu_mask", profile.runtime.cpu_mask)
    if m.emulated:
        # Said wherever the numbers go (JSON, summary, report): an emulator's timings are not
        # the device's, only its kernels' results are.
        env["latency_note"] = "; ".join(x for x in (f"{EMULATED_NOTE} ({m.emulated})", env.get("latency_note")) if x)
    return BenchmarkResult(
        device=profile.name,
        runner=runner_kind,
        runtime=m.runtime,
        runtime_version=m.runtime_version,
        artifact=str(target.path),
        precision=target.precision,
        threads=m.threads,
        warmup_runs=m.warmup_runs,
        num_runs=m.num_runs,
        latency=m.latency,
        init_ms=m.init_ms,
        first_inference_ms=m.first_inference_ms,
        peak_mem_mb=m.peak_mem_mb,
        environment=env,
        samples_ms=m.samples_ms,
        op_profile=m.op_profile,
        emulated=m.emulated,
        cooldown_s=m.cooldown_s,
        state_before=m.state_before,
        state_after=m.state_after,
        sustained=m.sustained,
    )


def raw_path_for(json_path: Path) -> Path:
    base = json_path.name[: -len(".json")] if json_path.name.endswith(".json") else json_path.name
    return json_path.with_name(f"{base}.raw.txt")


def save_result(result: BenchmarkResult, raw_text: str, json_path: str | os.PathLike[str]) -> BenchmarkResult:
    """Write the raw tool output, then the result JSON pointing at it (both atomically)."""
    json_path = Path(json_path)
    raw = raw_path_for(json_path)
    atomic_write_text(raw, raw_text)
    result = dataclasses.replace(result, raw_output=str(raw))
    result.save(json_path)
    return result


def save_partial(exc: BenchRunError, target: Target, device: str, runner_kind: str, json_path: Path) -> Path:
    """Keep what a failed run measured: ``<name>.partial.json`` beside where the result would
    have gone (never the result's own name: nothing unfinished may look finished)."""
    base = json_path.name[: -len(".json")] if json_path.name.endswith(".json") else json_path.name
    path = json_path.with_name(base + ".partial.json")
    raw = raw_path_for(path)
    atomic_write_text(raw, exc.raw_text)
    payload = {
        "kind": "benchmark_partial",
        "device": device,
        "runner": runner_kind,
        "artifact": str(target.path),
        "error": str(exc),
        "num_runs": len(exc.samples_ms),
        "samples_ms": list(exc.samples_ms),
        "raw_output": str(raw),
    }
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path
