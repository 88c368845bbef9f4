"""What a build checks before its run folder exists: the output folder, the disk, the device.

The rule (DESIGN.md, "validate everything, then write"): a run folder appears only once every
input has passed, so a bad option never leaves a half-made folder behind and a re-run with a
bad option never touches a finished run's files. The checks here are the ones that need no
teacher or data, so they run first and fail in well under a second.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from edgecompress.errors import ConfigError
from edgecompress.profiles import DeviceProfile
from edgecompress.runconfig import RunConfig
from edgecompress.runtimes import get_runtime, list_runtimes

# A demo run folder is ~5 MB; onnx2tf's work folder and the TFLite files of a bigger student
# need more. Below this a run would fail late, half-written.
MIN_FREE_MB = 100


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


def check_out_folder(out: Path, min_free_mb: float = MIN_FREE_MB) -> None:
    """``out`` is (or can become) a writable folder on a disk with room for a run."""
    where = f"--out {out}"
    try:
        if os.path.lexists(out) and not out.exists():
            raise ConfigError(f"{where}: a broken symlink or a symlink loop; allowed: a folder or a path to create")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{where}: exists and is not a folder; allowed: a folder or a path to create")
        base = _nearest_existing(out.absolute())
        if not base.is_dir():
            raise ConfigError(f"{where}: {base} is not a folder, so nothing can be created under it")
        # Really create (and remove) a file: os.access says yes to root on a read-only mount
        # and knows nothing of /proc or /sys.
        fd, name = tempfile.mkstemp(prefix=".edgecompress-probe-", dir=base)
        os.close(fd)
        os.unlink(name)
        free_mb = shutil.disk_usage(base).free / 2**20
    except OSError as exc:
        raise ConfigError(f"{where}: cannot write there ({exc.strerror or exc})") from None
    if free_mb < min_free_mb:
        raise ConfigError(f"{where}: only {free_mb:.0f} MB free on that disk; a run needs at least {min_free_mb:g} MB")


def with_budget_overrides(profile: DeviceProfile, cfg: RunConfig) -> DeviceProfile:
    """The profile with --latency-ms / --memory-mb applied, so selection, the verdict and the
    report all judge the student against the same budgets."""
    b = profile.budgets
    budgets = dataclasses.replace(
        b,
        latency_budget_ms=cfg.latency_ms if cfg.latency_ms is not None else b.latency_budget_ms,
        peak_ram_budget_mb=cfg.memory_mb if cfg.memory_mb is not None else b.peak_ram_budget_mb,
    )
    return dataclasses.replace(profile, budgets=budgets)


def check_device(cfg: RunConfig, profile: DeviceProfile, artifact_format: str) -> None:
    """--serial / --host: allowed for this profile, useful for its artifacts, and answering."""
    if not (cfg.serial or cfg.host):
        return
    flag = "--serial" if cfg.serial else "--host"
    provider = get_runtime(profile.runtime.kind)
    if ("adb" if cfg.serial else "ssh") not in provider.runners:
        able = [k for k in list_runtimes() if get_runtime(k).measures_on_device()]
        raise ConfigError(
            f"{flag}: device {profile.name} runs {profile.runtime.kind} ({artifact_format} artifacts), which a build "
            f"measures only with the runners {', '.join(provider.runners)}; drop {flag} or use a profile with "
            f"runtime.kind = {' or '.join(able)} (measure an .onnx with `edgecompress bench --artifact ... --runner ssh`)"
        )
    from edgecompress.bench.reach import probe_device

    probe_device(profile, serial=cfg.serial, host=cfg.host)
