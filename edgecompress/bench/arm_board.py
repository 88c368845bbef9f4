"""Python handle on the emulated aarch64 boards of ``scripts/arm_board.sh``.

The shell script does the system work (debootstrap, chroot, mounts, sshd under qemu-user);
this module finds its cached root, starts a board and returns what SshRunner needs -- for
``benchmarks/arm_parity.py`` and the ``arm_board`` tests. Building the root takes many minutes
and is never started from here: :func:`root_built` lets callers skip instead.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from edgecompress.errors import BenchError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "arm_board.sh"
CPUS = {"cortex-a72": "rpi4", "cortex-a76": "rpi5"}  # emulated core -> the profile it stands for


@dataclasses.dataclass(frozen=True)
class Board:
    cpu: str  # the emulated core (QEMU_CPU)
    profile: str  # the device profile it stands in for
    alias: str  # the --host to use
    ssh_config: str  # the client config holding the alias (EDGECOMPRESS_SSH_CONFIG)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGECOMPRESS_CACHE") or Path.home() / ".cache" / "edgecompress")


def root_dir() -> Path:
    return cache_dir() / "arm64-root"


def root_built() -> bool:
    """True once ``arm_board.sh build`` finished (it writes the marker last)."""
    return (root_dir() / "etc" / "edgecompress-emulated").is_file()


def build_seconds() -> int | None:
    try:
        return int((root_dir() / "etc" / "edgecompress-build-seconds").read_text().strip())
    except (OSError, ValueError):
        return None


def _script(*args: str, timeout_s: float = 300.0) -> str:
    if not SCRIPT.is_file():
        raise BenchError(f"{SCRIPT} not found (the arm board needs a source checkout)")
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise BenchError((done.stderr.strip().splitlines() or [f"arm_board.sh {' '.join(args)} failed (exit {done.returncode})"])[-1])
    return done.stdout


def start_board(cpu: str) -> Board:
    """Start (or reuse) the board emulating ``cpu``; the root must already be built."""
    if cpu not in CPUS:
        raise BenchError(f"cpu {cpu!r} is not allowed (allowed: {', '.join(CPUS)})")
    if not root_built():
        raise BenchError(f"no arm64 root at {root_dir()}; build it once: sudo bash {SCRIPT} build")
    out = _script("start", "--cpu", cpu)
    alias = config = ""
    for line in out.splitlines():
        if line.startswith("--host "):
            alias = line.split(None, 1)[1].strip()
        elif line.startswith("export EDGECOMPRESS_SSH_CONFIG="):
            config = line.split("=", 1)[1].strip()
    if not alias or not config:
        raise BenchError(f"arm_board.sh start printed no --host: {out!r}")
    return Board(cpu, CPUS[cpu], alias, config)


def board_running(cpu: str) -> bool:
    """True while the board's sshd (pid file inside the root) is alive."""
    try:
        os.kill(int((root_dir() / "run" / f"ec-sshd-{cpu}.pid").read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def stop_board(cpu: str) -> None:
    _script("stop", "--cpu", cpu)
