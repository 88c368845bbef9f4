"""Is the phone or board there? One quick probe, run before a build trains anything.

``adb -s SERIAL get-state`` for a phone, ``ssh -o BatchMode=yes -o ConnectTimeout=5 HOST true``
for a board: a few seconds at most, once, so an unplugged phone or a typo in the host name is
reported before select, distill and export have spent minutes (or hours with a real teacher).
"""

from __future__ import annotations

from edgecompress.bench.api import make_runner
from edgecompress.bench.proc import run_command
from edgecompress.errors import DeviceError
from edgecompress.profiles import DeviceProfile, RunnerKind

CONNECT_TIMEOUT_S = 5


def probe_device(profile: DeviceProfile, *, serial: str | None = None, host: str | None = None) -> None:
    """Raise a one-line error (DeviceError, exit 3) unless the device given by ``serial`` /
    ``host`` answers; a serial for an ssh board (or a host for a phone) is a BenchError."""
    kind = profile.connection.runner
    runner = make_runner(kind, profile, serial=serial, host=host)  # serial vs host vs runner kind
    try:
        if kind == RunnerKind.ADB.value:
            from edgecompress.bench.adb import AdbRunner

            assert isinstance(runner, AdbRunner)
            runner.retries = 1  # a probe: an absent phone is reported now, not after backoff
            runner.check()
        elif kind == RunnerKind.SSH.value:
            from edgecompress.bench.ssh import SshRunner

            assert isinstance(runner, SshRunner)
            runner.connect_timeout_s = CONNECT_TIMEOUT_S
            done = run_command([*runner.ssh_argv(), runner.host, "true"], timeout_s=CONNECT_TIMEOUT_S + 10)
            if done.timed_out or done.returncode != 0:
                err = runner._classify(done, "connect")
                raise DeviceError(str(err)) from None
    finally:
        runner.close()
