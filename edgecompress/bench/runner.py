"""The Runner interface: check the connection, push files, run, pull, clean up.

Three runners implement it: :class:`~edgecompress.bench.local.LocalRunner` (this machine, a
fresh python process), :class:`~edgecompress.bench.ssh.SshRunner` (a Linux board over
OpenSSH) -- both run the single-file ``device_runner.py`` -- and
:class:`~edgecompress.bench.adb.AdbRunner` (an Android phone, TFLite's ``benchmark_model``).
``Runner.measure`` turns a :class:`RunRequest` into a :class:`Measurement` and removes what it
pushed whatever happens.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from edgecompress.artifacts import DeviceState, LatencyStats, SustainedStats
from edgecompress.bench.proc import Completed, tail
from edgecompress.bench.thermal import state_from_event, sustained_from_events
from edgecompress.errors import BenchError

DEVICE_RUNNER = Path(__file__).resolve().with_name("device_runner.py")
MARKER = "@@edgecompress "  # must match device_runner.MARKER (that file cannot import us)
EXIT_NO_RUNTIME = 3


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What to measure: one model file, threads, warmup, counted runs or a time budget."""

    model: Path
    threads: int
    warmup: int = 10
    runs: int = 100
    max_seconds: float | None = None
    cpu_mask: str = ""  # hex affinity mask ("0xc0"); "" = the runner's default
    op_profiling: bool = False
    timeout_s: float | None = None  # whole command; None = derived from runs / max_seconds
    progress: bool | None = None  # a progress bar on stderr; None = only when stderr is a terminal
    sustained_s: float | None = None  # run back to back this long and report latency over time
    cooldown_s: float = 0.0  # idle on the device this long before the run

    def command_timeout(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        # Generous: a big model on a slow board may need minutes; a hang must still end.
        base = 600.0 if self.max_seconds is None else 120.0 + 2.0 * self.max_seconds
        return base + self.cooldown_s + 1.5 * (self.sustained_s or 0.0)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a runner measured, before it becomes a BenchmarkResult."""

    runtime: str
    runtime_version: str
    threads: int
    warmup_runs: int
    num_runs: int
    latency: LatencyStats
    raw_text: str
    samples_ms: tuple[float, ...] = ()
    init_ms: float | None = None
    first_inference_ms: float | None = None
    peak_mem_mb: float | None = None
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    op_profile: tuple[dict[str, Any], ...] = ()
    emulated: str = ""  # why the runner believes it ran under an emulator ("" = it did not)
    cooldown_s: float = 0.0
    state_before: DeviceState | None = None
    state_after: DeviceState | None = None
    sustained: SustainedStats | None = None


class BenchRunError(BenchError):
    """A benchmark run failed on the device; what it measured before failing is kept."""

    def __init__(self, message: str, *, raw_text: str = "", samples_ms: tuple[float, ...] = ()) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.samples_ms = samples_ms
        self.partial_path: Path | None = None  # set once the partial results are saved

    def kept_in(self, path: Path) -> BenchRunError:
        """The same error, saying where its partial results were saved."""
        new = BenchRunError(f"{self} (partial results, {len(self.samples_ms)} runs: {path})", raw_text=self.raw_text, samples_ms=self.samples_ms)
        new.partial_path = path
        return new


def launch_script(workdir: str, argv: list[str]) -> str:
    """A POSIX sh script that runs ``argv`` in ``workdir`` and leaves its pid in ``pid``.

    Every argument is quoted; the pid file lets :func:`stop_and_remove_script` end a run the
    host gave up on (a timeout) before the folder is removed.
    """
    return f"cd {shlex.quote(workdir)} && echo $$ > pid && exec {shlex.join(argv)}"


def stop_and_remove_script(workdir: str, *, stop: bool) -> str:
    """A POSIX sh script that removes ``workdir``, first killing the run's process group when
    ``stop`` (the run was abandoned: its children, e.g. a benchmark binary, must go too)."""
    q = shlex.quote(workdir)
    kill = (
        f'if [ -f {q}/pid ]; then p=$(cat {q}/pid); g=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d " "); '
        f'if [ -n "$g" ] && [ "$g" -gt 1 ]; then kill -9 -- "-$g" 2>/dev/null; fi; kill -9 "$p" 2>/dev/null; fi; '
    )
    return f"{kill if stop else ''}rm -rf -- {q}"


def mask_to_cpus(mask: str) -> list[int]:
    """``"0xc0"`` -> ``[6, 7]``."""
    value = int(mask, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


class Runner(abc.ABC):
    """One way of reaching a device. Use as a context manager so connections get closed."""

    kind: ClassVar[str] = ""

    def __init__(self, *, device: str = "", retries: int = 3, backoff_s: float = 1.0, timeout_s: float | None = None) -> None:
        self.device = device  # the profile name; filled by benchmark() when left empty
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s  # overrides RunRequest.command_timeout() when set

    # ------------------------------------------------------------------ the interface

    @property
    @abc.abstractmethod
    def target(self) -> str:
        """How the device is addressed (``localhost``, ``pi@rpi5``, an adb serial)."""

    @property
    def label(self) -> str:
        """Names the device in every error message."""
        return f"device {self.device or '?'} ({self.kind} {self.target})"

    @abc.abstractmethod
    def check(self) -> None:
        """Raise BenchError unless the device is reachable and usable."""

    @abc.abstractmethod
    def push(self, local: Path, name: str) -> str:
        """Copy ``local`` into this run's working folder on the device; return its device path."""

    @abc.abstractmethod
    def run(self, argv: list[str], *, timeout_s: float, on_line: Callable[[str], None] | None = None) -> Completed:
        """Run ``argv`` on the device; return its output even when it failed or timed out.

        ``on_line`` receives each stdout line as it arrives."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> Path:
        """Copy a device file back to ``local``."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove everything pushed in this run (safe to call twice, never raises BenchError)."""

    @abc.abstractmethod
    def measure(self, request: RunRequest) -> Measurement:
        """check, push, run, parse; cleanup in every case."""

    def close(self) -> None:  # noqa: B027 - optional hook: only ssh holds a connection
        """Release connections (ssh master, temp folders)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _timeout(self, request: RunRequest) -> float:
        return self.timeout_s if self.timeout_s is not None else request.command_timeout()


class PythonScriptRunner(Runner):
    """Runs ``device_runner.py`` with a python on the device (local process or over ssh)."""

    def __init__(self, *, python: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.python = python

    def cpus_for(self, request: RunRequest) -> list[int]:
        return mask_to_cpus(request.cpu_mask) if request.cpu_mask else []

    def measure(self, request: RunRequest) -> Measurement:
        self.check()
        try:
            script = self.push(DEVICE_RUNNER, DEVICE_RUNNER.name)
            model = self.push(request.model, request.model.name)
            argv = [
                self.python, script, model,
                "--threads", str(request.threads),
                "--warmup", str(request.warmup),
                "--runs", str(request.runs),
                "--cpus", ",".join(map(str, self.cpus_for(request))),
            ]  # fmt: skip
            if request.max_seconds is not None:
                argv += ["--max-seconds", repr(float(request.max_seconds))]
            if request.sustained_s is not None:
                argv += ["--sustained", repr(float(request.sustained_s))]
            if request.cooldown_s:
                argv += ["--cooldown", repr(float(request.cooldown_s))]
            with progress_bar(request, f"bench {self.device}") as on_line:
                done = self.run(argv, timeout_s=self._timeout(request), on_line=on_line)
            return parse_device_runner(done, self.label, str(request.model))
        finally:
            self.cleanup()


@contextlib.contextmanager
def progress_bar(request: RunRequest, desc: str) -> Iterator[Callable[[str], None] | None]:
    """A tqdm bar on stderr fed by device_runner's streamed samples (or None when disabled)."""
    enabled = sys.stderr.isatty() if request.progress is None else request.progress
    if not enabled or request.sustained_s is not None:  # sustained runs stream slices, not samples
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=request.runs, desc=desc, unit="run", file=sys.stderr, leave=False) as bar:

        def on_line(line: str) -> None:
            if line.startswith(MARKER):
                event = json.loads(line[len(MARKER) :])
                if event.get("event") == "samples":
                    bar.update(len(event["ms"]))

        yield on_line


def signal_name(signum: int) -> str:
    try:
        return f"signal {signum}, {signal.Signals(signum).name}"
    except ValueError:
        return f"signal {signum}"


def _events(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            try:
                events.append(json.loads(line[len(MARKER) :]))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: the samples before it still count
    return events


def parse_device_runner(done: Completed, label: str, model: str | None = None) -> Measurement:
    """Turn device_runner.py's output into a Measurement, or a BenchRunError keeping partial samples."""
    events = _events(done.stdout)
    samples = tuple(float(x) for e in events if e.get("event") == "samples" for x in e["ms"])
    raw = f"$ {' '.join(done.argv)}\n{done.stdout}" + (f"\n--- stderr ---\n{done.stderr}" if done.stderr else "")
    by_kind = {e.get("event"): e for e in events}
    # The tail worth showing is what a human would read: stderr, else stdout without our events.
    err_tail = tail(done.stderr) or tail("\n".join(ln for ln in done.stdout.splitlines() if not ln.startswith(MARKER)))
    if done.timed_out:
        raise BenchRunError(
            f"{label}: benchmark timed out after {done.seconds:.0f} s (stderr: {err_tail or 'empty'})",
            raw_text=raw,
            samples_ms=samples,
        )
    if done.returncode != 0 or "result" not in by_kind:
        error = by_kind.get("error", {})
        if done.returncode is not None and done.returncode < 0:
            # Killed by a signal (SIGSEGV, SIGBUS, SIGABRT): runtimes crash on a malformed model
            # file rather than report it.
            named = f" {model}" if model else ""
            what = f"the model file{named} crashed the runtime ({signal_name(-done.returncode)}); is it corrupt or truncated?"
        elif done.returncode == EXIT_NO_RUNTIME:
            what = "runtime missing on the device"
        elif not events and done.returncode == 127:
            what = "python not found on the device"
        else:
            what = f"benchmark failed (exit {done.returncode})"
        detail = error.get("message") or err_tail or "no output"
        raise BenchRunError(f"{label}: {what}: {detail}", raw_text=raw, samples_ms=samples)
    start, init, first, result = by_kind.get("start", {}), by_kind.get("init", {}), by_kind.get("first", {}), by_kind["result"]
    if not samples:
        raise BenchRunError(f"{label}: the device runner reported no timed runs", raw_text=raw)
    env = {str(k): str(v) for k, v in start.get("environment", {}).items()}
    emulated = env.pop("emulated", "")
    if "import_ms" in start:
        env["runtime_import_ms"] = f"{start['import_ms']:.1f}"
    for key in ("process_peak_rss_mb", "baseline_rss_mb"):
        if result.get(key) is not None:
            env[key] = f"{result[key]:.1f}"
    if init.get("inputs"):
        env["inputs"] = json.dumps(init["inputs"])
    return Measurement(
        runtime=str(start.get("runtime", "unknown")),
        runtime_version=str(start.get("runtime_version", "unknown")),
        threads=int(result["threads"]),
        warmup_runs=int(result["warmup_runs"]),
        num_runs=int(result.get("num_runs") or len(samples)),
        latency=LatencyStats.from_samples(list(samples)),
        raw_text=raw,
        samples_ms=samples,
        init_ms=init.get("init_ms"),
        first_inference_ms=first.get("first_inference_ms"),
        peak_mem_mb=result.get("peak_mem_mb"),
        environment=env,
        emulated=emulated,
        cooldown_s=float(start.get("cooldown_s") or 0.0),
        state_before=state_from_event(start.get("state_before")),
        state_after=state_from_event(result.get("state_after")),
        sustained=sustained_from_events(by_kind.get("sustained"), [e for e in events if e.get("event") == "bin"]),
    )
