"""LocalRunner: measure on this machine, in a fresh python process.

A fresh process (the same ``device_runner.py`` that goes to boards) keeps the measurement
honest: its peak RSS belongs to the model and the runtime, not to the torch / TensorFlow
already loaded in the caller, and its thread pool is not shared with anything else.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.bench.proc import Completed, run_command
from edgecompress.bench.runner import PythonScriptRunner, RunRequest, mask_to_cpus
from edgecompress.errors import BenchError


class LocalRunner(PythonScriptRunner):
    """This machine. ``python`` defaults to the interpreter running edgecompress."""

    kind = "local"

    def __init__(self, *, python: str | None = None, pin: bool = True, **kw: Any) -> None:
        super().__init__(python=python or sys.executable, **kw)
        self.pin = pin

    @property
    def target(self) -> str:
        return "localhost"

    def check(self) -> None:
        if not (Path(self.python).is_file() or shutil.which(self.python)):
            raise BenchError(f"{self.label}: python {self.python!r} not found")

    def cpus_for(self, request: RunRequest) -> list[int]:
        """The profile's mask if it has one, else the first ``threads`` CPUs we may use.

        Pinning to as many cores as threads stops the scheduler from migrating the runtime's
        threads mid-run, the largest source of run-to-run noise on a small shared machine.
        """
        if request.cpu_mask:
            return mask_to_cpus(request.cpu_mask)
        if not self.pin or not hasattr(os, "sched_getaffinity"):
            return []
        allowed = sorted(os.sched_getaffinity(0))
        return allowed[: request.threads] if len(allowed) >= request.threads else []

    def push(self, local: Path, name: str) -> str:
        # The device is this machine: the file is already where the process can read it.
        path = Path(local).resolve()
        if not path.is_file():
            raise BenchError(f"{self.label}: {local}: file not found")
        return str(path)

    def run(self, argv: list[str], *, timeout_s: float, on_line: Callable[[str], None] | None = None) -> Completed:
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # LiteRT's INFO banner is not a result
        return run_command(argv, timeout_s=timeout_s, env=env, on_line=on_line)

    def pull(self, remote: str, local: Path) -> Path:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise BenchError(f"{self.label}: cannot copy {remote} to {local}: {exc}") from None
        return Path(local)

    def cleanup(self) -> None:
        """Nothing was copied: push() hands out the caller's own files."""


def from_profile(profile: Any, target: str | None, options: dict[str, Any]) -> LocalRunner:
    """The registered factory (edgecompress/runners.py): this machine needs no address."""
    return LocalRunner(device=profile.name, **options)
