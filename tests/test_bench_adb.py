"""AdbRunner end to end through an `adb` test double (tests/fakes/adb).

No Android device exists on CI machines, so real phones are NOT exercised here. The double
runs what the runner pushes on this machine: the pushed `benchmark_model` (itself a test
double, tests/fakes/benchmark_model, that really runs the .tflite with LiteRT and prints the
real tool's output format) executes for real, under the real `taskset`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from fakes.bench_models import minimal_tflite

from edgecompress.bench import AdbRunner, BenchRunError, RunRequest, benchmark
from edgecompress.errors import BenchError
from edgecompress.profiles import load_profile

pytest_plugins = ["fakes.bench_fixtures"]  # tiny_onnx / tiny_tflite fixtures, shared by the bench tests

FAKES = Path(__file__).resolve().parent / "fakes"
pytestmark = pytest.mark.skipif(shutil.which("taskset") is None, reason="needs util-linux taskset")


@pytest.fixture
def fake_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the adb double first on PATH (and this python's bin, for the fakes' python3)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("adb", "benchmark_model"):  # copied so their exec bit never depends on the checkout
        shutil.copy(FAKES / name, bin_dir / name)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    (tmp_path / "device").mkdir()
    return tmp_path


@pytest.fixture
def dummy_tflite(tmp_path: Path) -> Path:
    """A file that is never run: for failures that happen before the model is loaded (the
    smallest flatbuffer that passes edgecompress's own .tflite structure check)."""
    path = tmp_path / "never_run.tflite"
    path.write_bytes(minimal_tflite())
    return path


def _calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "adb.log").read_text().splitlines()]


def _runner(tmp_path: Path, **kw: object) -> AdbRunner:
    kw.setdefault("benchmark_model", str(tmp_path / "bin" / "benchmark_model"))
    kw.setdefault("cpu_mask", "0x1")  # the phone's 0xc0 names CPUs this machine lacks
    kw.setdefault("backoff_s", 0.01)
    return AdbRunner(remote_dir=str(tmp_path / "device"), **kw)  # type: ignore[arg-type]


@pytest.mark.tflite
def test_end_to_end_through_adb_double(fake_adb: Path, tiny_tflite: Path) -> None:
    r = benchmark(tiny_tflite, "pixel7", runner=_runner(fake_adb, serial="emulator-5554"), runs=30, warmup=3, op_profiling=True)
    assert (r.device, r.runner, r.runtime, r.threads, r.num_runs, r.warmup_runs) == ("pixel7", "adb", "benchmark_model", 2, 30, 3)
    lat = r.latency
    assert 0 < lat.min_ms <= lat.p50_ms <= lat.max_ms and lat.p99_ms == lat.max_ms
    assert r.init_ms and r.first_inference_ms and r.peak_mem_mb is not None
    assert {op["node_type"] for op in r.op_profile} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert "upper bound" in r.environment["latency_note"] and r.environment["cpu_mask"] == "0x1"
    calls = _calls(fake_adb)
    assert all(c[:2] == ["-s", "emulator-5554"] for c in calls)  # every call names the device
    run = next(c[3] for c in calls if c[2] == "shell" and "benchmark_model --graph" in c[3])
    for flag in ("taskset 1 ", "--num_threads=2", "--warmup_runs=3", "--num_runs=30", "--use_xnnpack=true",
                 "--enable_op_profiling=true", "--report_peak_memory_footprint=true"):  # fmt: skip
        assert flag in run, flag
    assert [c[2] for c in calls if c[2] == "push"] == ["push", "push"]  # the binary and the model
    assert list((fake_adb / "device").iterdir()) == []  # everything pushed was removed


def test_command_uses_profile_big_core_mask() -> None:
    req = RunRequest(model=Path("m.tflite"), threads=2, warmup=5, runs=50, max_seconds=3, cpu_mask=load_profile("pixel7").runtime.cpu_mask)
    argv = AdbRunner(use_gpu=True, use_nnapi=True).command("/data/local/tmp/bm", "/data/local/tmp/m.tflite", req)
    assert argv[:3] == ["taskset", "c0", "/data/local/tmp/bm"]
    assert {"--use_gpu=true", "--use_nnapi=true", "--max_secs=3", "--warmup_runs=5"} <= set(argv)


@pytest.mark.tflite
def test_serial_from_environment(fake_adb: Path, tiny_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDROID_SERIAL", "emulator-5554")
    profile = load_profile("pixel7")
    prof = dataclasses.replace(profile, runtime=dataclasses.replace(profile.runtime, cpu_mask="0x1"),
                               connection=dataclasses.replace(profile.connection, remote_dir=str(fake_adb / "device")))  # fmt: skip
    # No runner given: the profile's adb runner, serial from $ANDROID_SERIAL, binary already on the device.
    shutil.copy(fake_adb / "bin" / "benchmark_model", fake_adb / "device" / "benchmark_model")
    monkeypatch.setattr("edgecompress.bench.adb.DEFAULT_DEVICE_BINARY", str(fake_adb / "device" / "benchmark_model"))
    r = benchmark(tiny_tflite, prof, runs=5, warmup=1)
    assert r.num_runs == 5 and r.environment["serial"] == "emulator-5554"
    assert all(c[:2] == ["-s", "emulator-5554"] for c in _calls(fake_adb))


def test_unknown_serial_is_named(fake_adb: Path, dummy_tflite: Path) -> None:
    with pytest.raises(BenchError, match=r"device pixel7 \(adb R5CT00000\): could not reach the device .*device 'R5CT00000' not found"):
        benchmark(dummy_tflite, "pixel7", runner=_runner(fake_adb, serial="R5CT00000"), runs=5)


def test_offline_device_is_retried_then_reported(fake_adb: Path, dummy_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ADB_STATE", "offline")
    with pytest.raises(BenchError, match=r"device offline.*gave up after 3 attempts"):
        benchmark(dummy_tflite, "pixel7", runner=_runner(fake_adb, retries=3), runs=5)
    assert len(_calls(fake_adb)) == 3


@pytest.mark.tflite
def test_transient_fault_then_success(fake_adb: Path, tiny_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fake_adb / "flaky").write_text("2")  # the first two adb calls fail as "device offline"
    monkeypatch.setenv("FAKE_ADB_FLAKY", str(fake_adb / "flaky"))
    r = benchmark(tiny_tflite, "pixel7", runner=_runner(fake_adb, retries=3), runs=5, warmup=1)
    assert r.num_runs == 5


def test_unauthorized_device_is_not_retried(fake_adb: Path, dummy_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ADB_STATE", "unauthorized")
    with pytest.raises(BenchError, match="unauthorized") as info:
        benchmark(dummy_tflite, "pixel7", runner=_runner(fake_adb, retries=3), runs=5)
    assert "attempts" not in str(info.value) and len(_calls(fake_adb)) == 1


def test_benchmark_model_missing_on_device(fake_adb: Path, dummy_tflite: Path) -> None:
    runner = _runner(fake_adb, benchmark_model=None, device_benchmark_model=str(fake_adb / "device" / "nope"))
    with pytest.raises(BenchError, match=r"runtime missing on the device: no executable .*--benchmark-model PATH"):
        benchmark(dummy_tflite, "pixel7", runner=runner, runs=5)
    assert list((fake_adb / "device").iterdir()) == []


def test_failing_benchmark_model_keeps_output_and_cleans_up(fake_adb: Path, dummy_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BM_FAIL", "1")
    with pytest.raises(BenchRunError, match=r"benchmark_model failed \(exit 1\).*Benchmarking failed") as info:
        benchmark(dummy_tflite, "pixel7", runner=_runner(fake_adb), runs=5, out_dir=fake_adb / "out")
    assert info.value.partial_path is not None and "Could not open" in info.value.raw_text
    assert list((fake_adb / "device").iterdir()) == []


@pytest.mark.tflite
def test_timeout_mid_run_kills_and_cleans_up(fake_adb: Path, tiny_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BM_SLEEP", "60")
    with pytest.raises(BenchRunError, match="timed out after") as info:
        benchmark(tiny_tflite, "pixel7", runner=_runner(fake_adb, timeout_s=8), runs=5, warmup=2)
    assert "count=2" in info.value.raw_text  # the warmup block it printed before hanging is kept
    assert list((fake_adb / "device").iterdir()) == []


def test_onnx_is_rejected_for_adb(fake_adb: Path, tiny_onnx: Path) -> None:
    with pytest.raises(BenchError, match=r"adb devices run .tflite models"):
        benchmark(tiny_onnx, "pixel7", runner=_runner(fake_adb), runs=5)
    assert not (fake_adb / "adb.log").exists()  # rejected before any adb call


def test_adb_not_installed(dummy_tflite: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"device pixel7 \(adb default device\): 'no-adb-here' not found \(apt-get install adb"):
        benchmark(dummy_tflite, "pixel7", runner=AdbRunner(adb="no-adb-here", remote_dir=str(tmp_path)), runs=5)
