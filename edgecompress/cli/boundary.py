"""The CLI's one error boundary: whatever goes wrong becomes one line on stderr and an exit code.

- a user error (:class:`EdgeCompressError`, a bad click option): ``error: <what, where, allowed>``
- an ``OSError`` on a path (read-only folder, a file where a folder is expected, /proc, a full
  disk): ``error: <path>: <reason>`` -- the user can fix it, so it is a user error too
- Ctrl-C / SIGTERM: ``error: interrupted``; finished stages are kept and the next run resumes
- anything else is a bug: ``error: internal error (...), please report it`` naming the file that
  holds the full traceback, never the traceback itself

Exit codes live in :mod:`edgecompress.errors`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from edgecompress.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    EdgeCompressError,
    InternalError,
)


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception, so ``finally`` blocks (and the converter's process
    group kill) run exactly as they do for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_interrupted(signum: int, _frame: Any) -> NoReturn:
    raise Interrupted(signum)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C while a command runs (Python's default would end the process
    without cleanup); the previous handler is restored after."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _path_error(exc: OSError) -> str:
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return f"error: {reason}"
    where = " -> ".join(os.fsdecode(p) for p in paths)
    return f"error: {where}: {reason}"


def write_traceback(exc: BaseException, argv: list[str]) -> Path | None:
    """The full traceback in a file under the temp folder (the run folder may not exist yet)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (
        f"edgecompress {' '.join(argv)}\n{datetime.datetime.now().isoformat()}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    try:
        fd, name = tempfile.mkstemp(prefix=f"edgecompress-crash-{stamp}-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return Path(name)
    except OSError:
        return None


def describe(exc: BaseException, argv: list[str]) -> tuple[str, int]:
    """The one line and the exit code for ``exc``."""
    if isinstance(exc, click.Abort) and isinstance(exc.__cause__, EOFError):
        exc = exc.__cause__  # click turns every EOFError into Abort: an unexpected one is a bug, not Ctrl-C
    if isinstance(exc, EdgeCompressError):
        return f"error: {one_line(str(exc))}", exc.exit_code
    if isinstance(exc, click.UsageError):
        cmd = exc.ctx.command_path if exc.ctx is not None else "edgecompress"
        return f"error: {one_line(exc.format_message())} (see '{cmd} --help')", EXIT_USER
    if isinstance(exc, click.ClickException):
        return f"error: {one_line(exc.format_message())}", exc.exit_code or EXIT_USER
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        return "error: interrupted; finished stages are kept and the same command resumes", EXIT_INTERRUPTED
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)):
        return _path_error(exc), EXIT_USER
    log = write_traceback(exc, argv)
    where = f"; the traceback is in {log}" if log else ""
    if isinstance(exc, InternalError):
        return f"error: {one_line(str(exc))}{where}", EXIT_INTERNAL
    if isinstance(exc, MemoryError):
        what = "out of memory"
    else:
        what = f"{type(exc).__name__}: {one_line(str(exc))[:300]}"
    return f"error: internal error ({what}), please report it{where}", EXIT_INTERNAL


def run_guarded(fn: Callable[[], Any], argv: list[str]) -> int:
    """Call ``fn`` (click's main in non-standalone mode); return the process exit code."""
    try:
        rv = fn()
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USER)
    except BaseException as exc:  # noqa: BLE001 - this *is* the boundary: nothing passes it unreported
        line, code = describe(exc, argv)
        try:
            click.echo(line, err=True)
        except OSError:  # stderr itself is gone (a closed pipe): the exit code still tells
            pass
        return code
    return rv if isinstance(rv, int) else 0
