"""Running the programs that reach a device (adb, ssh, python): argv lists, timeouts, checked
exit codes, the tail of stderr in every error, and retries with backoff for transient faults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from edgecompress.errors import BenchError, DeviceError

T = TypeVar("T")

# Failures worth another try: the link, not the request, went wrong. Authentication and
# host-key failures are deliberately absent: retrying them only delays the real message.
TRANSIENT = re.compile(
    r"connection refused|connection timed out|operation timed out|timed out during banner|"
    r"no route to host|network is unreachable|connection reset|connection closed by|"
    r"kex_exchange_identification|broken pipe|device offline|error: closed|"
    r"protocol fault|cannot connect to daemon|daemon not running",
    re.IGNORECASE,
)


def tail(text: str | bytes | None, lines: int = 6, chars: int = 600) -> str:
    """The last few non-empty lines of ``text``, joined with " | " to stay on one line."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    kept = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-lines:]
    out = " | ".join(kept)
    return out[-chars:]


@dataclasses.dataclass(frozen=True)
class Completed:
    """What a finished (or killed) command left behind."""

    argv: tuple[str, ...]
    returncode: int | None  # None: killed on timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


class CommandError(DeviceError):
    """A device command failed; keeps the command's output for partial results."""

    def __init__(self, message: str, completed: Completed | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.completed = completed
        self.transient = transient


def run_command(
    argv: Sequence[str],
    *,
    timeout_s: float,
    stdin_path: Path | None = None,
    stdout_path: Path | None = None,
    stderr_path: Path | None = None,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Completed:
    """Run ``argv`` (never through a shell) and return its output, also when it timed out.

    The child gets its own session so that a timeout kills the whole process group (a python
    that started runtime threads, an ssh mux client), and what it printed until then is kept.
    ``stdout_path`` / ``stderr_path`` send a stream to a file instead of a pipe: for binary
    output, and for programs that leave a background child holding the stream (``ssh -f``).
    ``on_line`` is called with each stdout line as it arrives (for a progress bar).
    """
    argv = [str(a) for a in argv]
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(stdin_path, "rb")) if stdin_path is not None else subprocess.DEVNULL
        stdout = stack.enter_context(open(stdout_path, "wb")) if stdout_path is not None else subprocess.PIPE
        stderr = stack.enter_context(open(stderr_path, "wb")) if stderr_path is not None else subprocess.PIPE
        try:
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise BenchError(f"{argv[0]}: program not found (is it installed and on PATH?)") from None
        except PermissionError:
            raise BenchError(f"{argv[0]}: not executable") from None
        if on_line is not None and stdout_path is None:
            out, err, code = _stream(proc, timeout_s, on_line)
        else:
            try:
                out, err = proc.communicate(timeout=timeout_s)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out, err = _drain(proc)
                code = None
    if stderr_path is not None:
        err = Path(stderr_path).read_bytes()
    return Completed(
        tuple(argv),
        code,
        (out or b"").decode("utf-8", "replace"),
        (err or b"").decode("utf-8", "replace"),
        time.perf_counter() - start,
    )


def _stream(proc: subprocess.Popen[bytes], timeout_s: float, on_line: Callable[[str], None]) -> tuple[bytes, bytes, int | None]:
    """communicate(), but handing each stdout line to ``on_line`` as soon as it is printed."""
    out: list[bytes] = []
    err: list[bytes] = []

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            out.append(line)
            try:
                on_line(line.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - a display callback must never break a measurement
                pass

    def pump_err() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(65536), b""):  # type: ignore[union-attr]
            err.append(chunk)

    pumps = [threading.Thread(target=f, daemon=True) for f in (pump_out, pump_err)]
    for t in pumps:
        t.start()
    code: int | None
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        code = None
    # After a kill an ssh master may hold the pipes open (see _drain): wait briefly, keep what came.
    for t in pumps:
        t.join(timeout=10.0 if code is not None else 1.0)
    return b"".join(out), b"".join(err), code


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What a killed process printed. An ssh mux client hands its pipes to the master
    connection, which keeps them open while the remote command lives: wait briefly, then take
    what arrived instead of waiting for an EOF that only the remote end can give."""
    try:
        return proc.communicate(timeout=1.0)
    except subprocess.TimeoutExpired as exc:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
        return exc.stdout or b"", exc.stderr or b""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def is_transient(stderr: str) -> bool:
    return bool(TRANSIENT.search(stderr or ""))


def with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    backoff_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient :class:`CommandError` try again after 1x, 2x, 4x ``backoff_s``.

    The error finally raised says how many attempts were made. Non-transient errors (bad
    credentials, a failing program) are raised at once.
    """
    attempts = max(1, attempts)
    for i in range(attempts):
        try:
            return fn()
        except CommandError as exc:
            if not exc.transient:
                raise
            if i == attempts - 1:
                raise CommandError(f"{exc} (gave up after {attempts} attempts to {what})", exc.completed, True) from None
            sleep(backoff_s * (2**i))
    raise AssertionError("unreachable")
