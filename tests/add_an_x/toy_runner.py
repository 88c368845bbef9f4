"""A toy benchmark runner in one file: a "device" that is a folder on this machine, reached
through ``sh`` as a board is reached through ssh. It implements only the four transport hooks
of bench/remote.py; the work-folder state machine (fresh folder, pid file, stop-and-remove)
and the device-side runner come from the base classes. One registration line at the bottom."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.bench.proc import Completed, run_command
from edgecompress.bench.remote import RemoteSession
from edgecompress.bench.runner import PythonScriptRunner
from edgecompress.errors import BenchError
from edgecompress.runners import RunnerSpec, register_runner


class FolderRunner(RemoteSession, PythonScriptRunner):
    kind = "toy-folder"

    def __init__(self, root: str, *, python: str = "python3", **kw: Any) -> None:
        super().__init__(python=python, **kw)
        self.root = Path(root)

    @property
    def target(self) -> str:
        return str(self.root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise BenchError(f"{self.label}: {self.root} is not a folder")

    def make_workdir(self) -> str:
        return tempfile.mkdtemp(prefix="run-", dir=self.root)

    def copy_to(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def exec_script(self, script: str, *, what: str, timeout_s: float) -> Completed:
        done = run_command(["sh", "-c", script], timeout_s=timeout_s)
        if done.returncode != 0:
            raise BenchError(f"{self.label}: could not {what}: {done.stderr.strip()}")
        return done

    def launch(self, script: str, *, timeout_s: float, on_line: Callable[[str], None] | None) -> Completed:
        return run_command(["sh", "-c", script], timeout_s=timeout_s, on_line=on_line)

    def pull(self, remote: str, local: Path) -> Path:
        shutil.copyfile(remote, local)
        return Path(local)


def from_profile(profile: Any, host: str | None, options: dict[str, Any]) -> FolderRunner:
    return FolderRunner(host or tempfile.gettempdir(), device=profile.name, **options)


register_runner(RunnerSpec("toy-folder", f"{__name__}:from_profile", "host", None, "a folder on this machine, through sh"))
