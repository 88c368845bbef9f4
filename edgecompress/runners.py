"""Benchmark runners as registered providers (stdlib only, so profiles validate
``connection.runner`` and the CLI lists the kinds without importing a runner).

A runner kind names a factory ``(profile, target, options) -> Runner``, where ``target`` is the
device address it takes from the command line (``--serial`` for adb, ``--host`` for ssh, none
for the local machine), and optionally a probe that tells, in seconds, whether the device is
there. ``bench`` and ``build`` go through this table; none of them names a runner kind.
Adding a runner is its module plus one ``register_runner(...)`` line.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from edgecompress.errors import BenchError


@dataclasses.dataclass(frozen=True)
class RunnerSpec:
    kind: str
    factory: str  # "module:function" -> function(profile, target, options) -> Runner
    target: str | None = None  # "serial" or "host": the option that addresses the device
    probe: str | None = None  # "module:function" -> function(runner) raising DeviceError when absent
    description: str = ""

    def load(self, attr: str = "factory") -> Callable[..., Any]:
        module, _, fn = str(getattr(self, attr)).partition(":")
        return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


_RUNNERS: dict[str, RunnerSpec] = {}


def register_runner(spec: RunnerSpec) -> RunnerSpec:
    if spec.kind in _RUNNERS:
        raise ValueError(f"runner {spec.kind!r} is already registered")
    if spec.target not in (None, "serial", "host"):
        raise ValueError(f"runner {spec.kind!r}: target must be 'serial', 'host' or None")
    _RUNNERS[spec.kind] = spec
    return spec


def get_runner(kind: str) -> RunnerSpec:
    if kind not in _RUNNERS:
        raise BenchError(f"runner {kind!r} is not allowed (allowed: {', '.join(_RUNNERS)})")
    return _RUNNERS[kind]


def list_runners() -> tuple[str, ...]:
    return tuple(_RUNNERS)


def kinds_addressed_by(target: str) -> list[str]:
    return [k for k, s in _RUNNERS.items() if s.target == target]


register_runner(RunnerSpec("local", "edgecompress.bench.local:from_profile", None, None,
                           "this machine, a fresh subprocess per measurement"))
register_runner(RunnerSpec("adb", "edgecompress.bench.adb:from_profile", "serial", "edgecompress.bench.adb:probe",
                           "an Android device over adb, benchmark_model"))
register_runner(RunnerSpec("ssh", "edgecompress.bench.ssh:from_profile", "host", "edgecompress.bench.ssh:probe",
                           "a Linux board over ssh, the Python device runner"))
