"""`edgecompress bench`: summary, JSON for `edgecompress calibrate`, one-line user errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.artifacts import BenchmarkResult
from edgecompress.cli.main import cli

pytest_plugins = ["fakes.bench_fixtures"]  # tiny_onnx / tiny_tflite fixtures, shared by the bench tests


def test_bench_host_writes_json(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["bench", "--artifact", str(tiny_onnx), "--device", "host", "--runs", "20", "--warmup", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    result = BenchmarkResult.load(out)
    assert (result.device, result.runner, result.num_runs, result.warmup_runs) == ("host", "local", 20, 2)
    assert Path(result.raw_output or "") == tmp_path / "r.raw.txt" and (tmp_path / "r.raw.txt").is_file()
    assert "p50" in res.output and "peak memory" in res.output and str(out) in res.output
    assert len(res.output.splitlines()) <= 24  # one screen


@pytest.mark.tflite
def test_bench_tflite_time_budget(tiny_tflite: Path) -> None:
    res = CliRunner().invoke(cli, ["bench", "--artifact", str(tiny_tflite), "--runs", "100000", "--max-seconds", "0.3", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert "litert" in res.output and "2 threads" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--artifact", "missing.onnx"], "missing.onnx: file not found"),
        (["--artifact", "{onnx}", "--runs", "0"], "runs = 0 is not allowed (an integer in [1, 1000000000])"),
        (["--artifact", "{onnx}", "--serial", "A", "--host", "B"], "--serial (adb) and --host (ssh) cannot both be given"),
        (["--artifact", "{onnx}", "--device", "nokia3310"], "unknown device 'nokia3310'"),
        (["--artifact", "{onnx}", "--host", "pi@rpi"], "host 'pi@rpi' is for ssh devices; device host is reached by local"),
        (["--artifact", "{onnx}", "--device", "rpi5", "--benchmark-model", "bm"], "--benchmark-model does not apply to device rpi5"),
    ],
)
def test_user_errors_are_one_line(tiny_onnx: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, ["bench", *[a.replace("{onnx}", str(tiny_onnx)) for a in args]])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.output
    assert "Traceback" not in res.output
