"""Parity on the device's own kernels: run an artifact on any runner, compare its top-1.

The export-time parity gate runs ONNX Runtime and LiteRT on this machine, i.e. x86 kernels
(AVX2 / AVX-512 VNNI). A device runs different code for the same model -- XNNPACK's NEON
kernels, SDOT on ARMv8.2 cores -- so an int8 artifact that agrees here can still disagree
there. :func:`device_logits` runs the artifact on a board (or locally, for the host's numbers)
through ``device_infer.py``; :func:`device_parity` turns that into agreement and accuracy.

Runners that start a python on the device (local, ssh) can do it. An Android phone over adb
has no python: :func:`device_logits` says so instead of pretending.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from edgecompress.artifacts import ExportArtifact
from edgecompress.bench.proc import tail
from edgecompress.bench.runner import DEVICE_RUNNER, MARKER, PythonScriptRunner, Runner
from edgecompress.errors import BenchError

DEVICE_INFER = DEVICE_RUNNER.with_name("device_infer.py")


@dataclasses.dataclass(frozen=True)
class DeviceLogits:
    logits: np.ndarray
    runtime: str
    runtime_version: str
    environment: dict[str, str]
    seconds: float  # the device's own time for all samples (emulated: not a latency)

    @property
    def emulated(self) -> str:
        return self.environment.get("emulated", "")


@dataclasses.dataclass(frozen=True)
class DeviceParity:
    """Top-1 of an artifact on one device against a reference (PyTorch or another device)."""

    device: str
    runner: str
    n_samples: int
    top1_agreement: float  # with the reference's top-1
    acc_artifact: float  # % correct against the labels
    acc_reference: float
    max_abs_diff: float
    emulated: str
    runtime: str
    runtime_version: str
    cpu: str  # what the device said it runs on (the emulated core for qemu)


def to_layout(x_nchw: np.ndarray, layout: str) -> np.ndarray:
    """NCHW parity inputs in the artifact's layout (NHWC for onnx2tf's TFLite files)."""
    return np.ascontiguousarray(x_nchw if layout.upper() == "NCHW" else x_nchw.transpose(0, 2, 3, 1), np.float32)


def device_logits(runner: Runner, model: str | Path, x: np.ndarray, *, threads: int = 1, timeout_s: float = 1800.0) -> DeviceLogits:
    """Outputs of ``model`` for float32 inputs ``x`` (already in the model's layout), computed
    on the runner's device, one sample per call. Everything pushed is removed afterwards."""
    if not isinstance(runner, PythonScriptRunner):
        raise BenchError(
            f"{runner.label}: parity on the device needs a python there (local or ssh runners); "
            "an Android phone over adb has none, so its parity is not measured"
        )
    model = Path(model)
    if not model.is_file():
        raise BenchError(f"{model}: model file not found")
    runner.check()
    with tempfile.TemporaryDirectory(prefix="ec-parity-") as tmp:
        inputs = Path(tmp) / "inputs.npy"
        np.save(inputs, np.ascontiguousarray(x, np.float32))
        try:
            runner.push(DEVICE_RUNNER, DEVICE_RUNNER.name)  # device_infer imports its helpers
            script = runner.push(DEVICE_INFER, DEVICE_INFER.name)
            remote_model = runner.push(model, model.name)
            remote_inputs = runner.push(inputs, inputs.name)
            done = runner.run([runner.python, script, remote_model, remote_inputs, "--threads", str(threads)], timeout_s=timeout_s)
        finally:
            runner.cleanup()
    events = {}
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            try:
                event = json.loads(line[len(MARKER) :])
            except json.JSONDecodeError:
                continue
            events[event.get("event")] = event
    if done.timed_out or done.returncode != 0 or "outputs" not in events:
        why = "timed out" if done.timed_out else f"exit {done.returncode}"
        detail = events.get("error", {}).get("message") or tail(done.stderr) or "no output"
        raise BenchError(f"{runner.label}: inference for parity failed ({why}): {detail}")
    out, start = events["outputs"], events.get("start", {})
    logits = np.frombuffer(base64.b64decode(out["data"]), np.float32).reshape(out["shape"])
    env = {str(k): str(v) for k, v in start.get("environment", {}).items()}
    return DeviceLogits(logits.copy(), str(start.get("runtime", "?")), str(start.get("runtime_version", "?")), env, float(out.get("seconds", 0.0)))


def compare_top1(device: str, runner: str, got: DeviceLogits, reference: np.ndarray, labels: np.ndarray) -> DeviceParity:
    """Agreement of ``got`` with ``reference`` logits, and both accuracies on ``labels``."""
    if got.logits.shape != reference.shape:
        raise BenchError(f"device {device}: outputs of shape {got.logits.shape}, expected {reference.shape}")
    top, ref_top = got.logits.argmax(1), reference.argmax(1)
    diff = np.abs(got.logits.astype(np.float64) - reference.astype(np.float64))
    return DeviceParity(
        device=device,
        runner=runner,
        n_samples=int(len(labels)),
        top1_agreement=float((top == ref_top).mean()),
        acc_artifact=float((top == labels).mean() * 100),
        acc_reference=float((ref_top == labels).mean() * 100),
        max_abs_diff=float(diff.max()) if np.all(np.isfinite(diff)) else float("inf"),
        emulated=got.emulated,
        runtime=got.runtime,
        runtime_version=got.runtime_version,
        cpu=got.environment.get("qemu_cpu") or got.environment.get("cpu_model", "?"),
    )


def device_parity(
    artifact: ExportArtifact, runner: Runner, x_nchw: np.ndarray, labels: np.ndarray, reference: np.ndarray, *, threads: int = 1
) -> DeviceParity:
    """Top-1 agreement and accuracy of ``artifact`` run on ``runner``'s device.

    ``x_nchw``: float32 NCHW inputs, normalized as the artifact expects (the parity set);
    ``reference``: the logits to agree with (eager PyTorch's, or the host runtime's)."""
    got = device_logits(runner, artifact.path, to_layout(x_nchw, artifact.input.layout), threads=threads)
    return compare_top1(runner.device or runner.target, runner.kind, got, reference, np.asarray(labels))
