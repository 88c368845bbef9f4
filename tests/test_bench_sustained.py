"""Sustained mode, cool-down, device state, emulation marking and parity on a runner, locally.

Everything runs the real device_runner.py / device_infer.py in a fresh python with the real
ONNX Runtime; the board-side counterparts are in test_arm_board.py (marker ``arm_board``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.artifacts import BenchmarkResult
from edgecompress.bench import LocalRunner, benchmark
from edgecompress.bench.device_parity import compare_top1, device_logits
from edgecompress.bench.thermal import parse_sysfs_dump
from edgecompress.cli.main import cli
from edgecompress.errors import BenchError, CalibrationError

pytest_plugins = ["fakes.bench_fixtures"]


def test_sustained_run_reports_latency_over_time(tiny_onnx: Path, tmp_path: Path) -> None:
    r = benchmark(tiny_onnx, "host", sustained_s=1.5, cooldown_s=0.2, warmup=2, json_path=tmp_path / "s.json")
    s = r.sustained
    assert s is not None and s.duration_s == 1.5
    assert s.window_s == pytest.approx(0.15)  # a tenth of a run shorter than 3 minutes
    assert s.first.num_runs > 0 and s.last.num_runs > 0
    assert 0 < s.first.p50_ms <= s.first.p99_ms and 0 < s.last.p50_ms <= s.last.p99_ms
    assert len(s.t_s) >= 3 and list(s.t_s) == sorted(s.t_s) and len(s.p50_ms) == len(s.t_s)
    # Every run counted; the overall distribution comes from the kept (possibly sampled) runs.
    assert r.num_runs >= s.first.num_runs + s.last.num_runs and len(r.samples_ms) <= r.num_runs
    assert r.cooldown_s == 0.2 and r.state_before is not None and r.state_after is not None
    assert r.emulated == "" and "latency_note" not in r.environment
    assert BenchmarkResult.load(tmp_path / "s.json") == r
    # The build report shows a sustained run as a table and a latency-over-time plot.
    from edgecompress.report.html import _section_sustained

    html = _section_sustained([r])
    assert "<h3>Sustained latency</h3>" in html and "alt='sustained latency over time'" in html


def test_bench_cli_sustained_and_cooldown(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["bench", "--artifact", str(tiny_onnx), "--sustained", "1", "--cooldown", "0.1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "sustained    1 s continuous: first" in res.output and "before (after 0.1 s cool-down)" in res.output
    assert BenchmarkResult.load(out).sustained is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sustained", "0"], "sustained"),
        (["--sustained", "2", "--max-seconds", "1"], "cannot both"),
        (["--cooldown", "-1"], "cooldown"),
    ],
)
def test_bench_cli_rejects_bad_sustained_options(tiny_onnx: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, ["bench", "--artifact", str(tiny_onnx), *args])
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output


def test_qemu_environment_marks_results_emulated_and_calibration_refuses(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # qemu-user passes QEMU_CPU to the programs it runs; the device runner reads it as a sign of
    # emulation (on the board it also sees an x86 /proc/cpuinfo under an aarch64 python).
    monkeypatch.setenv("QEMU_CPU", "cortex-a72")
    r = benchmark(tiny_onnx, "host", runs=5, warmup=1)
    assert "QEMU_CPU=cortex-a72" in r.emulated
    assert r.environment["latency_note"].startswith("emulated: latency is not a device latency")
    from edgecompress.cost.calibrate import measure_file
    from edgecompress.profiles import load_profile

    with pytest.raises(CalibrationError, match="refusing to calibrate on emulated latency"):
        measure_file(tiny_onnx, load_profile("host"), 5, 1)


def test_parse_android_state_dump() -> None:
    text = "zone cpu-thermal 45200\nzone battery 31\ngov cpu0 schedutil\nfreq cpu0 1800000\nfreq cpu7 x\n--- dumpsys thermalservice\nThermal Status: 0\n"
    st = parse_sysfs_dump(text)
    assert st.temperatures_c == {"cpu-thermal": 45.2, "battery": 31.0}
    assert st.governors == {"cpu0": "schedutil"} and st.freqs_mhz == {"cpu0": 1800.0}
    assert st.raw == "Thermal Status: 0"


def test_device_logits_locally_match_the_runtime_in_process(tiny_onnx: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((12, 3, 32, 32)).astype(np.float32)
    got = device_logits(LocalRunner(device="host"), tiny_onnx, x)
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    want = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got.logits, want, rtol=1e-5, atol=1e-5)
    p = compare_top1("host", "local", got, want, want.argmax(1))
    assert (p.top1_agreement, p.acc_artifact, p.emulated) == (1.0, 100.0, "")


def test_device_logits_refuses_adb() -> None:
    from edgecompress.bench import AdbRunner

    with pytest.raises(BenchError, match="needs a python there"):
        device_logits(AdbRunner(device="pixel7"), "m.tflite", np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.tflite
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs util-linux taskset")
def test_adb_sustained_reads_state_before_and_after(tmp_path: Path, tiny_tflite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The adb test double (tests/fakes/adb) runs what is pushed on this machine, including the
    # benchmark_model double that really runs the model with LiteRT.
    from test_bench_adb import _runner, fake_adb

    bench_dir = fake_adb.__wrapped__(tmp_path, monkeypatch)  # type: ignore[attr-defined]
    r = benchmark(tiny_tflite, "pixel7", runner=_runner(bench_dir), sustained_s=0.5, cooldown_s=0.1, warmup=1)
    s = r.sustained
    assert s is not None and s.first.num_runs > 0 and len(s.t_s) >= 1 and r.num_runs >= s.first.num_runs
    assert "sustained: " in r.environment["latency_note"] and r.cooldown_s == 0.1
    assert r.state_before is not None and r.state_after is not None  # host sysfs through the double
    assert list((bench_dir / "device").iterdir()) == []
