"""Benchmark harnesses: this machine, Android phones over adb, Linux boards over ssh.

    from edgecompress.bench import benchmark
    result = benchmark("model.tflite", "host", runs=200)          # -> BenchmarkResult

Importing this package is light (no torch / onnx / tensorflow): runtimes are only imported
inside the measuring process, which is a fresh python or a device.
"""

from __future__ import annotations

from edgecompress.bench.adb import AdbRunner
from edgecompress.bench.api import benchmark, make_runner, resolve_artifact, save_result
from edgecompress.bench.local import LocalRunner
from edgecompress.bench.runner import DEVICE_RUNNER, BenchRunError, Measurement, Runner, RunRequest
from edgecompress.bench.ssh import SshRunner
from edgecompress.bench.tflite_output import BenchmarkModelOutput, parse_benchmark_model_output

__all__ = [
    "DEVICE_RUNNER",
    "AdbRunner",
    "BenchRunError",
    "BenchmarkModelOutput",
    "LocalRunner",
    "Measurement",
    "RunRequest",
    "Runner",
    "SshRunner",
    "benchmark",
    "make_runner",
    "parse_benchmark_model_output",
    "resolve_artifact",
    "save_result",
]
