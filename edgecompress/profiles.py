"""Device profiles: load, validate and list ``device_profiles/*.toml``.

A profile says what the device is (hardware), how models run on it (runtime), what the cost
model may assume before calibration (priors), what the user allows (budgets) and how to reach
it (connection). Units live in key names. Every problem is reported as one line naming the
file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
from pathlib import Path
from typing import Any

from edgecompress.artifacts import Artifact, _decode_dataclass, read_toml
from edgecompress.bounds import MAX_BUDGET, MAX_THREADS, check_float, check_int
from edgecompress.errors import ConfigError, ProfileError
from edgecompress.runners import list_runners
from edgecompress.runtimes import list_runtimes

PROFILE_SCHEMA_VERSION = 1
ENV_PROFILES_DIR = "EDGECOMPRESS_PROFILES"


PRECISIONS = ("fp32", "fp16", "int8")
MAX_PRIOR = 1e9  # GMAC/s, GB/s, us: generous, but finite
MAX_RAM_GB = 1e5
MAX_CLOCK_GHZ = 100.0


@dataclasses.dataclass(frozen=True)
class CoreCluster:
    name: str
    core: str
    count: int
    max_clock_ghz: float


@dataclasses.dataclass(frozen=True)
class Hardware:
    soc: str = "unknown"
    ram_gb: float = 0.0
    clusters: tuple[CoreCluster, ...] = ()
    # host only: fill soc / ram / clusters from the machine we are running on at load time.
    detect: bool = False
    isa: str = ""


@dataclasses.dataclass(frozen=True)
class Runtime:
    kind: str
    threads: int
    cpu_mask: str = ""  # hex affinity mask, e.g. "0xc0"; "" = no pinning
    precisions: tuple[str, ...] = ("fp32", "int8")
    delegate: str = "xnnpack"


@dataclasses.dataclass(frozen=True)
class Priors:
    """Cost-model starting points, replaced by ``edgecompress calibrate`` measurements."""

    fp32_gmacs_per_s: float
    fp16_gmacs_per_s: float
    int8_gmacs_per_s: float
    memory_bandwidth_gb_per_s: float
    per_op_overhead_us: float
    per_inference_overhead_us: float = 0.0


@dataclasses.dataclass(frozen=True)
class Budgets:
    latency_budget_ms: float
    peak_ram_budget_mb: float
    model_size_budget_mb: float


@dataclasses.dataclass(frozen=True)
class Connection:
    runner: str
    serial_env: str = ""  # adb: environment variable holding the device serial
    host_env: str = ""  # ssh: environment variable holding the host or ~/.ssh/config alias
    remote_dir: str = ""  # where files are pushed on the device


@dataclasses.dataclass(frozen=True)
class DeviceProfile(Artifact):
    kind = "device_profile"  # type: ignore[misc]
    schema_version: int
    name: str
    description: str
    hardware: Hardware
    runtime: Runtime
    priors: Priors
    budgets: Budgets
    connection: Connection
    source: str = ""  # the file it was loaded from (filled by the loader)

    @property
    def calibration_path(self) -> Path:
        """Where ``edgecompress calibrate`` stores measurements and the fit, beside the file."""
        src = Path(self.source) if self.source else builtin_profiles_dir() / f"{self.name}.toml"
        return src.with_name(f"{src.stem}.calibration.json")


def builtin_profiles_dir() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "device_profiles"  # wheel installs (force-included by pyproject)
    return packaged if packaged.is_dir() else here.parent / "device_profiles"


def profile_dirs(extra: str | os.PathLike[str] | None = None) -> list[Path]:
    dirs = [builtin_profiles_dir()]
    env = os.environ.get(ENV_PROFILES_DIR, "")
    for item in [*(env.split(os.pathsep) if env else []), *([str(extra)] if extra else [])]:
        p = Path(item).expanduser()
        if not p.is_dir():
            raise ProfileError(f"{item}: profiles directory does not exist")
        if p.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(p)
    return dirs


def _check_values(p: DeviceProfile, where: str) -> None:
    def bad(key: str, value: Any, allowed: str) -> ProfileError:
        return ProfileError(f"{where}: {key} = {value!r} is not allowed ({allowed})")

    if p.runtime.kind not in list_runtimes():
        raise bad("runtime.kind", p.runtime.kind, f"allowed: {', '.join(list_runtimes())}")
    if p.connection.runner not in list_runners():
        raise bad("connection.runner", p.connection.runner, f"allowed: {', '.join(list_runners())}")
    check_int(f"{where}: runtime.threads", p.runtime.threads, 1, MAX_THREADS, ProfileError)
    if not p.runtime.precisions:
        raise bad("runtime.precisions", [], f"list at least one of: {', '.join(PRECISIONS)}")
    for prec in p.runtime.precisions:
        if prec not in PRECISIONS:
            raise bad("runtime.precisions", prec, f"allowed: {', '.join(PRECISIONS)}")
    if p.runtime.cpu_mask:
        try:
            if int(p.runtime.cpu_mask, 16) <= 0:
                raise ValueError
        except ValueError:
            raise bad("runtime.cpu_mask", p.runtime.cpu_mask, 'a positive hex mask such as "0xc0"') from None
    for key, value in dataclasses.asdict(p.budgets).items():
        check_float(f"{where}: budgets.{key}", value, 0.0, MAX_BUDGET, ProfileError)
    for key, value in dataclasses.asdict(p.priors).items():
        # Throughputs must be > 0 (they divide); overheads may be 0.
        check_float(f"{where}: priors.{key}", value, 0.0, MAX_PRIOR, ProfileError, lo_open=key.endswith("gmacs_per_s"))
    if not 0 <= p.hardware.ram_gb <= MAX_RAM_GB or not math.isfinite(p.hardware.ram_gb):
        raise bad("hardware.ram_gb", p.hardware.ram_gb, f"a finite number in [0, {MAX_RAM_GB:g}]")
    for i, c in enumerate(p.hardware.clusters):
        clock_ok = math.isfinite(c.max_clock_ghz) and 0 <= c.max_clock_ghz <= MAX_CLOCK_GHZ
        if not 1 <= c.count <= MAX_THREADS or not clock_ok or (c.max_clock_ghz == 0 and not p.hardware.detect):
            raise bad(f"hardware.clusters[{i}]", f"{c.count}x{c.max_clock_ghz}GHz",
                      f"count in [1, {MAX_THREADS}], clock in (0, {MAX_CLOCK_GHZ:g}] GHz")


def _detect_host_hardware(hw: Hardware) -> Hardware:
    """Fill the host profile's hardware from the running machine (best effort, Linux first)."""
    model = platform.processor() or platform.machine()
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key == "cpu mhz" and not mhz:
                mhz = float(value)
    except (OSError, ValueError):
        pass
    ram_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except (OSError, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cluster = CoreCluster(name="all", core=model, count=cores, max_clock_ghz=round(mhz / 1000, 2) if mhz else 0.0)
    return dataclasses.replace(hw, soc=model, ram_gb=ram_gb, clusters=(cluster,), isa=platform.machine())


def load_profile_file(path: str | os.PathLike[str]) -> DeviceProfile:
    """Parse and validate one profile file."""
    path = Path(path)
    where = str(path)
    data = read_toml(path, ProfileError)
    version = data.get("schema_version")
    if version is None:
        raise ProfileError(f"{where}: schema_version: missing required key (allowed: {PROFILE_SCHEMA_VERSION})")
    if version != PROFILE_SCHEMA_VERSION:
        raise ProfileError(f"{where}: schema_version = {version!r} is not supported (allowed: {PROFILE_SCHEMA_VERSION})")
    if "source" in data:
        raise ProfileError(f"{where}: unknown key 'source' (it is filled by the loader)")
    try:
        profile: DeviceProfile = _decode_dataclass(DeviceProfile, data, "")
    except ConfigError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    _check_values(profile, where)
    if profile.hardware.detect:
        profile = dataclasses.replace(profile, hardware=_detect_host_hardware(profile.hardware))
    return dataclasses.replace(profile, source=str(path))


def list_profiles(profiles_dir: str | os.PathLike[str] | None = None) -> list[DeviceProfile]:
    """All profiles from the built-in folder, $EDGECOMPRESS_PROFILES and ``profiles_dir``."""
    seen: dict[str, DeviceProfile] = {}
    for d in profile_dirs(profiles_dir):
        for f in sorted(d.glob("*.toml")):
            prof = load_profile_file(f)
            if prof.name in seen:
                raise ProfileError(
                    f"{f}: duplicate profile name {prof.name!r} (already defined in {seen[prof.name].source}); rename one"
                )
            seen[prof.name] = prof
    return sorted(seen.values(), key=lambda p: p.name)


def load_profile(name_or_path: str, profiles_dir: str | os.PathLike[str] | None = None) -> DeviceProfile:
    """A profile by name (searched in the profile folders) or by path to a .toml file."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        return load_profile_file(name_or_path)
    profiles = {p.name: p for p in list_profiles(profiles_dir)}
    if name_or_path not in profiles:
        raise ProfileError(
            f"unknown device {name_or_path!r} (known: {', '.join(sorted(profiles))}; "
            f"add your own with --profiles-dir or ${ENV_PROFILES_DIR})"
        )
    return profiles[name_or_path]
