"""LocalRunner and benchmark(): real ONNX Runtime and LiteRT in a fresh python process."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from fakes.bench_models import python_without_runtimes, write_script

from edgecompress.artifacts import BenchmarkResult, ExportArtifact, InputSpec, Preprocessing
from edgecompress.bench import BenchRunError, LocalRunner, benchmark, resolve_artifact
from edgecompress.errors import BenchError
from edgecompress.profiles import load_profile

pytest_plugins = ["fakes.bench_fixtures"]  # tiny_onnx / tiny_tflite fixtures, shared by the bench tests


def _check_result(r: BenchmarkResult, runs: int) -> None:
    lat = r.latency
    assert r.num_runs == runs == len(r.samples_ms)
    assert 0 < lat.min_ms <= lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert lat.mean_ms == pytest.approx(sum(r.samples_ms) / runs)
    assert r.init_ms is not None and r.init_ms > 0
    assert r.first_inference_ms is not None and r.first_inference_ms > 0
    assert r.peak_mem_mb is not None and r.peak_mem_mb > 0
    for key in ("cpu_model", "governor", "affinity", "python", "numpy", "process_peak_rss_mb"):
        assert r.environment.get(key), key


def test_onnx_on_host_writes_json_and_raw(tiny_onnx: Path, tmp_path: Path) -> None:
    r = benchmark(tiny_onnx, "host", runs=60, warmup=3, out_dir=tmp_path)
    _check_result(r, 60)
    assert (r.device, r.runner, r.runtime, r.threads, r.warmup_runs) == ("host", "local", "onnxruntime", 1, 3)
    assert r.runtime_version.startswith("1.")
    assert r.precision == "fp32"  # from the file name
    assert r.environment["affinity"].startswith("pinned to cpus")  # one thread -> one core
    saved = tmp_path / f"{tiny_onnx.stem}.host.t1.bench.json"
    assert BenchmarkResult.load(saved) == r
    raw = Path(r.raw_output or "").read_text()
    assert "@@edgecompress" in raw and '"event": "result"' in raw
    # Peak memory is the model's share, measured in a process without torch or pytest in it.
    assert r.peak_mem_mb < float(r.environment["process_peak_rss_mb"])


@pytest.mark.tflite
def test_tflite_on_host_two_threads(tiny_tflite: Path) -> None:
    r = benchmark(tiny_tflite, "host", threads=2, runs=50, warmup=2)
    _check_result(r, 50)
    assert (r.runtime, r.threads) == ("litert", 2)
    assert json.loads(r.environment["inputs"])[0]["shape"] == [1, 32, 32, 3]


def test_time_budget_stops_early(tiny_onnx: Path) -> None:
    start = time.perf_counter()
    r = benchmark(tiny_onnx, "host", runs=10**8, warmup=1, max_seconds=0.5)
    assert 0 < r.num_runs < 10**8
    assert time.perf_counter() - start < 30


def test_export_artifact_input_keeps_its_precision(tiny_onnx: Path) -> None:
    pre = Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    art = ExportArtifact(
        path=str(tiny_onnx), format="onnx", precision="int8", size_bytes=tiny_onnx.stat().st_size,
        sha256="0" * 64, op_counts={}, input=InputSpec("input", (1, 3, 32, 32), "float32", "NCHW", pre),
    )  # fmt: skip
    assert resolve_artifact(art).precision == "int8"
    json_file = tiny_onnx.parent / "art.json"
    art.save(json_file)
    assert resolve_artifact(json_file).path == tiny_onnx.resolve()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, "runs = 0"),
        ({"warmup": -1}, "warmup = -1"),
        ({"threads": 0}, "threads = 0"),
        ({"max_seconds": 0}, "max_seconds = 0"),
    ],
)
def test_bad_numbers_rejected(tiny_onnx: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        benchmark(tiny_onnx, "host", **kwargs)


def test_bad_files_rejected(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="file not found"):
        benchmark(tmp_path / "missing.onnx")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(BenchError, match=r"unsupported artifact \(allowed: .onnx, .tflite"):
        benchmark(tmp_path / "m.pt")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(BenchError, match="file is empty"):
        benchmark(tmp_path / "empty.tflite")


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    # Checked before any runtime is handed the file (a corrupt .tflite would segfault LiteRT).
    with pytest.raises(BenchError, match=r"corrupt.onnx: not a valid .onnx file .*truncated or corrupt"):
        benchmark(bad, "host", runs=5)


def test_runtime_missing_names_device_and_fix(tiny_onnx: Path, tmp_path: Path) -> None:
    runner = LocalRunner(python=python_without_runtimes(tmp_path))
    with pytest.raises(BenchError) as info:
        benchmark(tiny_onnx, "host", runner=runner, runs=5)
    msg = str(info.value)
    assert "device host" in msg and "runtime missing on the device" in msg and "pip install onnxruntime" in msg


def test_failing_python_reports_stderr_tail(tiny_onnx: Path, tmp_path: Path) -> None:
    py = write_script(tmp_path / "python-broken", "echo 'Segmentation fault (core dumped)' >&2; exit 139")
    with pytest.raises(BenchError, match=r"exit 139.*Segmentation fault"):
        benchmark(tiny_onnx, "host", runner=LocalRunner(python=py), runs=5)


def test_timeout_mid_run_keeps_partial_results(tiny_onnx: Path, tmp_path: Path) -> None:
    runner = LocalRunner(timeout_s=6)  # room for a slow start on a loaded CI machine
    with pytest.raises(BenchRunError) as info:
        benchmark(tiny_onnx, "host", runner=runner, runs=10**9, warmup=1, out_dir=tmp_path)
    err = info.value
    assert "timed out after" in str(err) and "device host" in str(err)
    assert err.partial_path is not None and err.partial_path.is_file()
    partial = json.loads(err.partial_path.read_text())
    assert partial["num_runs"] == len(partial["samples_ms"]) > 0
    assert Path(partial["raw_output"]).is_file()
    assert not list(tmp_path.glob("*.bench.json"))  # nothing that looks like a finished result


def test_profile_object_and_mask(tiny_onnx: Path) -> None:
    profile = load_profile("host")
    pinned = dataclasses.replace(profile, runtime=dataclasses.replace(profile.runtime, cpu_mask="0x1"))
    r = benchmark(tiny_onnx, pinned, runs=10)
    assert r.environment["affinity"] == "pinned to cpus 0"


def test_progress_bar_follows_streamed_samples(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    benchmark(tiny_onnx, "host", runs=20000, warmup=1, max_seconds=1.2, progress=True)
    err = capsys.readouterr().err
    assert "bench host" in err and "run/s" in err


def test_device_runner_falls_back_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raspberry Pi images often have only tflite_runtime: it is taken when ai_edge_litert is absent."""
    from edgecompress.bench import device_runner

    sentinel = object()

    def fake_import(name: str) -> object:
        if name == "tflite_runtime":
            return sentinel
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(device_runner, "import_runtime", fake_import)
    assert device_runner.pick_runtime("m.tflite", "auto") == ("tflite_runtime", sentinel)
    with pytest.raises(SystemExit) as info:
        device_runner.pick_runtime("m.onnx", "auto")
    assert info.value.code == device_runner.EXIT_NO_RUNTIME
