"""The converter's out-of-process work: its process group and its work folders.

onnx2tf runs in a child python (TensorFlow's memory, threads and log spam stay out of the
caller). That child starts in its own session, so the whole group -- onnx2tf and anything it
spawns -- is killed together on a timeout, Ctrl-C, SIGTERM or any exception here; the worker
itself also exits when its parent disappears (SIGKILL leaves the parent no chance to clean
up). Work folders a killed run left behind are removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

WORK_PREFIX = ".export-work-"  # export.api creates its work folders under this prefix


def run_in_own_group(
    argv: Sequence[str], *, cwd: Path, stdout: IO[bytes], env: dict[str, str], timeout_s: float
) -> int | None:
    """Run ``argv`` in a new process group; its exit code, or None after a timeout. The group is
    killed whenever this function is left early, whatever the reason."""
    proc = subprocess.Popen(list(argv), cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc``'s process group (a no-op once it and its children are gone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
        pass


def reap_work_folders(export_dir: Path) -> list[Path]:
    """Remove ``<export_dir>/.export-work-*`` left by a run that was killed mid-export."""
    if not export_dir.is_dir():
        return []
    stale = [p for p in export_dir.glob(f"{WORK_PREFIX}*") if p.is_dir() and not p.is_symlink()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale
