"""AdbRunner: an Android phone over the system ``adb`` client, measured with TFLite's
``benchmark_model`` (a binary the user gives, or one already on the device).

The usual recipe, done with argv lists and checked exit codes: push the binary and the model to
a fresh folder under /data/local/tmp, run the binary under ``taskset`` with the profile's
big-core mask, parse what it prints, remove the folder. Real phones are not exercised by CI:
the tests drive this runner through an ``adb`` test double (tests/fakes/adb).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.artifacts import DeviceState, LatencyStats, SustainedStats, WindowStats
from edgecompress.bench.proc import CommandError, Completed, is_transient, run_command, tail, with_retries
from edgecompress.bench.remote import RemoteSession
from edgecompress.bench.runner import BenchRunError, Measurement, Runner, RunRequest
from edgecompress.bench.tflite_output import parse_benchmark_model_output
from edgecompress.bench.thermal import ADB_STATE_SCRIPT, parse_sysfs_dump
from edgecompress.errors import BenchError, DeviceError

SHORT_TIMEOUT_S = 120.0  # pushes of a model or the binary over USB
DEFAULT_DEVICE_BINARY = "/data/local/tmp/benchmark_model"
_PROPS = ("ro.product.model", "ro.soc.model", "ro.build.version.release", "ro.product.cpu.abi")


class AdbRunner(RemoteSession, Runner):
    """``serial`` picks the device (else $ANDROID_SERIAL, else adb's only device)."""

    kind = "adb"

    def __init__(
        self,
        *,
        serial: str | None = None,
        benchmark_model: str | None = None,
        device_benchmark_model: str | None = None,
        remote_dir: str = "/data/local/tmp/edgecompress",
        use_xnnpack: bool = True,
        use_gpu: bool = False,
        use_nnapi: bool = False,
        cpu_mask: str | None = None,
        adb: str = "adb",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if serial is not None and (not serial or serial.startswith("-")):
            raise BenchError(f"adb serial {serial!r} is not allowed")
        if benchmark_model is not None and not Path(benchmark_model).is_file():
            raise BenchError(f"{benchmark_model}: benchmark_model binary not found")
        self.serial = serial
        self.benchmark_model = benchmark_model
        self.device_benchmark_model = device_benchmark_model
        self.remote_dir = remote_dir.rstrip("/") or "/data/local/tmp"
        self.use_xnnpack, self.use_gpu, self.use_nnapi = use_xnnpack, use_gpu, use_nnapi
        self.cpu_mask = cpu_mask  # overrides the profile's mask (None: use the profile's)
        self.adb = adb

    @property
    def target(self) -> str:
        return self.serial or "default device"

    def adb_argv(self, *args: str) -> list[str]:
        return [self.adb, *(["-s", self.serial] if self.serial else []), *args]

    def _adb(self, *args: str, what: str, timeout_s: float = SHORT_TIMEOUT_S) -> Completed:
        """One adb call; CommandError (transient for offline / lost links) when it fails."""

        def once() -> Completed:
            done = run_command(self.adb_argv(*args), timeout_s=timeout_s)
            if done.timed_out:
                raise CommandError(f"{self.label}: adb timed out after {timeout_s:.0f} s while trying to {what}", done, transient=True)
            if done.returncode != 0:
                err = tail(done.stderr) or tail(done.stdout) or "no output"
                raise CommandError(f"{self.label}: could not {what} (adb exit {done.returncode}): {err}", done, transient=is_transient(done.stderr))
            return done

        try:
            return with_retries(once, attempts=self.retries, backoff_s=self.backoff_s, what=what)
        except CommandError as exc:
            raise DeviceError(str(exc)) from None

    def shell(self, script: str, *, what: str, timeout_s: float = SHORT_TIMEOUT_S) -> Completed:
        """``adb shell SCRIPT``: SCRIPT is one string for the device's sh, already quoted."""
        return self._adb("shell", script, what=what, timeout_s=timeout_s)

    # ------------------------------------------------------------------ Runner interface

    def check(self) -> None:
        if shutil.which(self.adb) is None:
            raise BenchError(f"{self.label}: {self.adb!r} not found (apt-get install adb, or Android's platform-tools on PATH)")
        done = self._adb("get-state", what="reach the device")
        state = done.stdout.strip()
        if state != "device":
            raise DeviceError(f"{self.label}: device state is {state!r} (expected 'device'; authorize USB debugging on the phone)")

    # ------------------------------------------------------------------ transport (bench/remote.py)

    def make_workdir(self) -> str:
        workdir = f"{self.remote_dir}/run-{secrets.token_hex(4)}"
        self.shell(shlex.join(["mkdir", "-p", workdir]), what=f"create {workdir}")
        return workdir

    def copy_to(self, local: Path, remote: str) -> None:
        self._adb("push", str(local), remote, what=f"push {local.name}")

    def exec_script(self, script: str, *, what: str, timeout_s: float) -> Completed:
        return self.shell(script, what=what, timeout_s=timeout_s)

    def launch(self, script: str, *, timeout_s: float, on_line: Callable[[str], None] | None) -> Completed:
        return run_command(self.adb_argv("shell", script), timeout_s=timeout_s, on_line=on_line)

    def pull(self, remote: str, local: Path) -> Path:
        self._adb("pull", remote, str(local), what=f"pull {remote}")
        return Path(local)

    # ------------------------------------------------------------------ benchmark_model

    def _binary(self) -> str:
        """Push the user's benchmark_model, or find one already on the device."""
        if self.benchmark_model:
            remote = self.push(Path(self.benchmark_model), "benchmark_model")
            self.shell(shlex.join(["chmod", "755", remote]), what="make benchmark_model executable")
            return remote
        on_device = self.device_benchmark_model or DEFAULT_DEVICE_BINARY
        done = run_command(self.adb_argv("shell", f"[ -x {shlex.quote(on_device)} ] && echo yes || echo no"), timeout_s=SHORT_TIMEOUT_S)
        if done.stdout.strip() != "yes":
            raise BenchError(
                f"{self.label}: runtime missing on the device: no executable {on_device} "
                "(pass --benchmark-model PATH to an android_aarch64 benchmark_model binary from TensorFlow's releases)"
            )
        return on_device

    def command(self, binary: str, model: str, request: RunRequest) -> list[str]:
        """The benchmark_model argv, under taskset when a CPU mask applies."""
        argv = [
            binary,
            f"--graph={model}",
            f"--num_threads={request.threads}",
            f"--warmup_runs={request.warmup}",
            "--warmup_min_secs=0",  # exactly the runs asked for, not "at least 0.5 s"
            f"--num_runs={request.runs}",
            "--min_secs=0",
            f"--use_xnnpack={'true' if self.use_xnnpack else 'false'}",
            "--report_peak_memory_footprint=true",
        ]
        if request.max_seconds is not None:
            argv.append(f"--max_secs={request.max_seconds:g}")
        if self.use_gpu:
            argv.append("--use_gpu=true")
        if self.use_nnapi:
            argv.append("--use_nnapi=true")
        if request.op_profiling:
            argv.append("--enable_op_profiling=true")
        mask = self.cpu_mask if self.cpu_mask is not None else request.cpu_mask
        if mask:
            # toybox taskset takes the mask in hex without the 0x.
            argv = ["taskset", format(int(mask, 16), "x"), *argv]
        return argv

    def environment(self, request: RunRequest) -> dict[str, str]:
        mask = self.cpu_mask if self.cpu_mask is not None else request.cpu_mask
        cpu = (int(mask, 16).bit_length() - 1) if mask else 0
        lines = [f'echo "{p}=$(getprop {p} 2>/dev/null)"' for p in _PROPS]
        lines.append(f'echo "governor=$(cat /sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor 2>/dev/null)"')
        done = run_command(self.adb_argv("shell", "; ".join(lines)), timeout_s=30.0)
        env = {"serial": self.target, "cpu_mask": mask or "none (not pinned)"}
        for line in done.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                env[key.strip()] = value.strip() or "unreadable"
        return env

    def device_state(self) -> DeviceState | None:
        """Thermal zones, governors, frequencies and ``dumpsys thermalservice`` (None if unreadable)."""
        done = run_command(self.adb_argv("shell", ADB_STATE_SCRIPT), timeout_s=30.0)
        return parse_sysfs_dump(done.stdout) if done.returncode == 0 else None

    def measure(self, request: RunRequest) -> Measurement:
        if request.model.suffix.lower() != ".tflite":
            raise BenchError(f"{self.label}: {request.model.name}: adb devices run .tflite models through benchmark_model (export a .tflite)")
        self.check()
        try:
            binary = self._binary()
            model = self.push(request.model, request.model.name)
            env = self.environment(request)
            if request.cooldown_s:
                time.sleep(request.cooldown_s)  # the phone idles: nothing of ours runs on it
            before = self.device_state()
            if request.sustained_s is not None:
                measured = self._sustained(binary, model, request, env)
            else:
                done = self.run(self.command(binary, model, request), timeout_s=self._timeout(request))
                measured = self._parse(done, request, env, binary)
            return dataclasses.replace(measured, cooldown_s=request.cooldown_s, state_before=before, state_after=self.device_state())
        finally:
            self.cleanup()

    def _sustained(self, binary: str, model: str, request: RunRequest, env: dict[str, str]) -> Measurement:
        """Back-to-back benchmark_model runs of one window each until ``sustained_s`` have passed.

        benchmark_model prints no per-run samples, so each window is one invocation and its
        figures are the tool's (median; p99 is its max, an upper bound). Between windows the
        model is reloaded: gaps of about the init time, during which the phone stays warm.
        """
        total = float(request.sustained_s or 0.0)
        window = 60.0 if total >= 180.0 else total / 10.0
        chunk = dataclasses.replace(request, runs=10**9, warmup=0, max_seconds=window, sustained_s=None)
        parts: list[Measurement] = []
        t_s: list[float] = []
        start = time.monotonic()
        while not parts or time.monotonic() - start < total:
            done = self.run(self.command(binary, model, chunk), timeout_s=120.0 + 2.0 * window)
            parts.append(self._parse(done, chunk, env, binary))
            t_s.append(time.monotonic() - start)
        first, last = parts[0], parts[-1]

        def win(m: Measurement) -> WindowStats:
            return WindowStats(m.num_runs, m.latency.p50_ms, m.latency.p99_ms, m.latency.mean_ms)

        runs = sum(m.num_runs for m in parts)
        mean = sum(m.latency.mean_ms * m.num_runs for m in parts) / max(runs, 1)
        # The overall figures: medians and upper bounds of the windows (no samples to pool).
        p50s = sorted(m.latency.p50_ms for m in parts)
        overall = LatencyStats(mean, max(m.latency.std_ms for m in parts), min(m.latency.min_ms for m in parts),
                               max(m.latency.max_ms for m in parts), p50s[len(p50s) // 2],
                               max(m.latency.p90_ms for m in parts), max(m.latency.p99_ms for m in parts))  # fmt: skip
        sustained = SustainedStats(
            duration_s=t_s[-1], window_s=window, first=win(first), last=win(last), t_s=tuple(t_s),
            p50_ms=tuple(m.latency.p50_ms for m in parts), p99_ms=tuple(m.latency.p99_ms for m in parts),
        )  # fmt: skip
        note = f"sustained: {len(parts)} benchmark_model runs of {window:g} s back to back; {first.environment.get('latency_note', '')}"
        return dataclasses.replace(
            first, num_runs=runs, latency=overall, raw_text="\n".join(m.raw_text for m in parts),
            environment=dict(first.environment, latency_note=note), sustained=sustained,
        )  # fmt: skip

    def _parse(self, done: Completed, request: RunRequest, env: dict[str, str], binary: str) -> Measurement:
        raw = f"$ adb shell {' '.join(done.argv[-1:])}\n{done.stdout}" + (f"\n--- stderr ---\n{done.stderr}" if done.stderr else "")
        err = tail(done.stderr) or tail(done.stdout) or "no output"
        if done.timed_out:
            raise BenchRunError(f"{self.label}: benchmark timed out after {done.seconds:.0f} s: {err}", raw_text=raw)
        if done.returncode != 0:
            raise BenchRunError(f"{self.label}: benchmark_model failed (exit {done.returncode}): {err}", raw_text=raw)
        out = parse_benchmark_model_output(done.stdout + "\n" + done.stderr)
        if out.runs is None:
            raise BenchRunError(f"{self.label}: benchmark_model printed no timing line: {err}", raw_text=raw)
        stats, note = out.latency()
        env = dict(env, binary=binary, latency_note=note)
        for key in ("mem_init_mb", "mem_peak_mb", "session_ms", "model_size_mb", "warmup_avg_ms"):
            value = getattr(out, key)
            if value is not None:
                env[key] = f"{value:g}"
        return Measurement(
            runtime="benchmark_model",
            runtime_version="unknown (benchmark_model prints no version)",
            threads=request.threads,
            warmup_runs=out.warmup.count if out.warmup is not None else request.warmup,
            num_runs=out.runs.count,
            latency=stats,
            raw_text=raw,
            init_ms=out.init_ms,
            first_inference_ms=out.first_inference_ms,
            # Same meaning as the local runner's figure: memory added since the tool started.
            peak_mem_mb=out.mem_overall_mb if out.mem_overall_mb is not None else out.mem_peak_mb,
            environment=env,
            op_profile=out.op_profile,
        )


def from_profile(profile: Any, serial: str | None, options: dict[str, Any]) -> AdbRunner:
    """The registered factory (edgecompress/runners.py): ``--serial``, else the profile's serial variable."""
    env_name = profile.connection.serial_env or "ANDROID_SERIAL"
    serial = serial or os.environ.get(env_name) or None
    options.setdefault("remote_dir", profile.connection.remote_dir or "/data/local/tmp/edgecompress")
    return AdbRunner(serial=serial, device=profile.name, **options)


def probe(runner: AdbRunner) -> None:
    """``adb -s SERIAL get-state``, once: an absent phone is reported now, not after backoff."""
    runner.retries = 1
    runner.check()
