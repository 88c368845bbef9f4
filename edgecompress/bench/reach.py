"""Is the phone or board there? One quick probe, run before a build trains anything.

``adb -s SERIAL get-state`` for a phone, ``ssh -o BatchMode=yes -o ConnectTimeout=5 HOST true``
for a board: a few seconds at most, once, so an unplugged phone or a typo in the host name is
reported before select, distill and export have spent minutes (or hours with a real teacher).
"""

from __future__ import annotations

from edgecompress.bench.api import make_runner
from edgecompress.profiles import DeviceProfile
from edgecompress.runners import get_runner


def probe_device(profile: DeviceProfile, *, serial: str | None = None, host: str | None = None) -> None:
    """Raise a one-line error (DeviceError, exit 3) unless the device given by ``serial`` /
    ``host`` answers; a serial for an ssh board (or a host for a phone) is a BenchError."""
    spec = get_runner(profile.connection.runner)
    runner = make_runner(spec.kind, profile, serial=serial, host=host)  # serial vs host vs runner kind
    try:
        if spec.probe is not None:
            spec.load("probe")(runner)
    finally:
        runner.close()
