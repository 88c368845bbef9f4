"""The CLI boundary in real processes: exit codes, the internal-error line with its traceback
file, SIGTERM, and a converter worker that must not outlive a SIGKILLed parent."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["build", "--latency-ms", "nan"], 2, ["latency_ms", "nan"]),
        (["build", "--out", "/proc/x"], 2, ["--out", "/proc/x"]),
        (["build", "--device", "rpi5", "--host", "127.0.0.1"], 3, ["127.0.0.1", "unreachable"]),
        (["bench", "--artifact", "missing.tflite"], 2, ["missing.tflite"]),
        (["nosuchcommand"], 2, ["nosuchcommand", "edgecompress --help"]),
    ],
)
def test_exit_codes_in_a_real_process(tmp_path: Path, args: list[str], code: int, words: list[str]) -> None:
    done = _run(["-m", "edgecompress", *args], tmp_path)
    assert done.returncode == code, done.stderr
    line = _one_line(done.stderr)
    for w in words:
        assert w in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kind", "what"), [("zero", "ZeroDivisionError"), ("eof", "EOFError"), ("memory", "out of memory")])
def test_internal_error_is_one_line_with_a_traceback_file(tmp_path: Path, kind: str, what: str) -> None:
    code = ("import sys, edgecompress.cli.main; m = sys.modules['edgecompress.cli.main']; m.COMMANDS['boom'] = 'boom:boom'; "
            f"m.main(['boom', '--kind', {kind!r}])")
    done = _run(["-c", code], tmp_path, TMPDIR=str(tmp_path))
    assert done.returncode == 4, done.stderr
    line = _one_line(done.stderr)
    assert "internal error" in line and "please report" in line and what in line, line
    log = Path(re.search(r"traceback is in (\S+)", line).group(1))  # type: ignore[union-attr]
    assert log.parent == tmp_path and "Traceback (most recent call last)" in log.read_text()


def test_sigterm_is_reported_as_interrupted(tmp_path: Path) -> None:
    # A long command with nothing written yet: generating the shapes data set into a fresh cache.
    env = {**os.environ, "EDGECOMPRESS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edgecompress", "data", "show", "shapes:train=400000"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in _one_line(err)


def _pids_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_converter_worker_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """The issue's orphan: the parent is SIGKILLed mid-conversion; the worker group must follow."""
    req = tmp_path / "request-orphan-check.json"
    req.write_text(json.dumps({"onnx": "x"}))
    parent = (
        "import os, sys; from pathlib import Path\n"
        "from edgecompress.export.worker import run_in_own_group\n"
        f"argv = [sys.executable, '-c', 'import time, edgecompress.export._onnx2tf_worker as w; w.exit_with_parent(0.1); time.sleep(120)', {str(req)!r}]\n"
        "run_in_own_group(argv, cwd=Path('.'), stdout=sys.stdout.buffer, env=dict(os.environ), timeout_s=300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 30
    workers: list[int] = []
    while not workers and time.time() < deadline:
        time.sleep(0.1)
        workers = [p for p in _pids_with(str(req)) if p != proc.pid]
    time.sleep(1.0)  # the worker's watchdog thread is up after its imports
    assert workers, "the worker did not start"
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while [p for p in _pids_with(str(req)) if p in workers] and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in _pids_with(str(req)) if p in workers], "the converter worker outlived its SIGKILLed parent"
