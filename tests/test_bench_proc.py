"""The subprocess layer under every runner: timeouts keep output, retries only transient faults."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgecompress.bench.proc import CommandError, Completed, is_transient, run_command, tail, with_retries
from edgecompress.bench.runner import launch_script, mask_to_cpus, stop_and_remove_script
from edgecompress.errors import BenchError


def test_timeout_kills_the_group_and_keeps_output() -> None:
    start = time.perf_counter()
    # The grandchild sleep would hold the pipe open if only the direct child were killed.
    done = run_command(["sh", "-c", "echo started; echo warming >&2; sleep 30 & wait"], timeout_s=1.0)
    assert done.timed_out and done.returncode is None
    assert done.stdout.strip() == "started" and "warming" in done.stderr
    assert time.perf_counter() - start < 10


def test_exit_code_and_missing_program() -> None:
    done = run_command(["sh", "-c", "exit 3"], timeout_s=10)
    assert done.returncode == 3 and not done.timed_out
    with pytest.raises(BenchError, match="no-such-program-xyz: program not found"):
        run_command(["no-such-program-xyz"], timeout_s=5)


def test_arguments_are_never_shell_parsed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    done = run_command(["echo", f"$(touch {marker})", ";", "rm", "-rf", "/"], timeout_s=5)
    assert done.returncode == 0 and not marker.exists()
    assert done.stdout.strip() == f"$(touch {marker}) ; rm -rf /"


def _failing(transient: bool, calls: list[int]) -> object:
    def fn() -> Completed:
        calls.append(1)
        raise CommandError("boom", transient=transient)

    return fn


def test_retries_transient_with_backoff_then_names_attempts() -> None:
    calls: list[int] = []
    waits: list[float] = []
    with pytest.raises(CommandError, match=r"boom \(gave up after 3 attempts to connect\)"):
        with_retries(_failing(True, calls), attempts=3, backoff_s=0.5, what="connect", sleep=waits.append)  # type: ignore[arg-type]
    assert len(calls) == 3 and waits == [0.5, 1.0]  # exponential backoff between attempts


def test_non_transient_is_raised_at_once() -> None:
    calls: list[int] = []
    with pytest.raises(CommandError, match="^boom$"):
        with_retries(_failing(False, calls), attempts=5, backoff_s=0.0, what="x", sleep=lambda s: None)  # type: ignore[arg-type]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        ("ssh: connect to host 10.0.0.9 port 22: Connection refused", True),
        ("ssh: connect to host pi port 22: Connection timed out", True),
        ("kex_exchange_identification: read: Connection reset by peer", True),
        ("adb: device offline", True),
        ("pi@rpi: Permission denied (publickey).", False),
        ("Host key verification failed.", False),
        ("adb: device unauthorized.", False),
    ],
)
def test_transient_classification(stderr: str, transient: bool) -> None:
    assert is_transient(stderr) is transient


def test_tail_is_one_line_of_the_last_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(20)) + "\n\n"
    assert tail(text, lines=3) == "line 17 | line 18 | line 19"
    assert tail(b"a\r\nb") == "a | b" and tail(None) == ""


def test_masks_and_scripts_quote_everything() -> None:
    assert mask_to_cpus("0xc0") == [6, 7] and mask_to_cpus("0xf") == [0, 1, 2, 3]
    script = launch_script("/tmp/it's here", ["python3", "run.py", "a b", "$(x)"])
    assert script == "cd '/tmp/it'\"'\"'s here' && echo $$ > pid && exec python3 run.py 'a b' '$(x)'"
    assert stop_and_remove_script("/tmp/d d", stop=False) == "rm -rf -- '/tmp/d d'"
    assert "kill -9" in stop_and_remove_script("/tmp/d", stop=True)
