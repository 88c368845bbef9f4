"""The work-folder state machine every remote runner shares (adb phones, ssh boards).

One measurement = one fresh folder on the device: created on the first push, the model and
tools copied in, the run started by a script that leaves its pid in the folder, and the folder
removed afterwards, first killing the run's process group if the host gave up on it (a
timeout). What differs between adb and ssh is only the transport, the four hooks below.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from pathlib import Path

from edgecompress.bench.proc import Completed
from edgecompress.bench.runner import launch_script, stop_and_remove_script
from edgecompress.errors import BenchError

log = logging.getLogger(__name__)


class RemoteSession(abc.ABC):
    """Mixin for a :class:`~edgecompress.bench.runner.Runner` that reaches its device through a
    command transport. Implements ``push`` / ``run`` / ``cleanup`` from the transport hooks."""

    _workdir: str | None = None
    _live_pid: bool = False  # a run was started and not seen to end: cleanup must stop it

    # ------------------------------------------------------------------ transport hooks

    @abc.abstractmethod
    def make_workdir(self) -> str:
        """Create a fresh, empty folder on the device; its absolute path."""

    @abc.abstractmethod
    def copy_to(self, local: Path, remote: str) -> None:
        """Copy one local file to ``remote`` on the device (DeviceError / BenchError on failure)."""

    @abc.abstractmethod
    def exec_script(self, script: str, *, what: str, timeout_s: float) -> Completed:
        """Run a POSIX sh ``script`` on the device; raise (BenchError) unless it succeeds."""

    @abc.abstractmethod
    def launch(self, script: str, *, timeout_s: float, on_line: Callable[[str], None] | None) -> Completed:
        """Run the measurement's launch ``script``; its exit code is the caller's to judge."""

    # ------------------------------------------------------------------ shared state machine

    def _ensure_workdir(self) -> str:
        if self._workdir is None:
            self._workdir = self.make_workdir()
        return self._workdir

    def push(self, local: Path, name: str) -> str:
        remote = f"{self._ensure_workdir()}/{name}"
        self.copy_to(Path(local), remote)
        return remote

    def run(self, argv: list[str], *, timeout_s: float, on_line: Callable[[str], None] | None = None) -> Completed:
        workdir = self._ensure_workdir()
        self._live_pid = True
        done = self.launch(launch_script(workdir, argv), timeout_s=timeout_s, on_line=on_line)
        self._live_pid = done.timed_out
        return done

    def cleanup(self) -> None:
        if self._workdir is None:
            return
        script = stop_and_remove_script(self._workdir, stop=self._live_pid)
        try:
            self.exec_script(script, what=f"remove {self._workdir}", timeout_s=60.0)
            self._workdir = None
            self._live_pid = False
        except BenchError as exc:
            # Cleanup must not hide the error that brought us here; say what was left behind.
            log.warning("could not remove %s on %s: %s", self._workdir, getattr(self, "target", "the device"), exc)
