"""Heat, clocks and time: the device state read around a run, and sustained-run summaries.

Burst latency (a few hundred runs on a cool device) and sustained latency (minutes of back to
back runs) differ on phones and boards that throttle: a Tensor G3 drifts from ~196 to ~400 ms
over 30 minutes. A result therefore carries the thermal zones, governors and frequencies read
before and after the run, and a sustained run carries its latency over time.

``device_runner.py`` reads sysfs itself (it cannot import this module); the adb runner reads it
with :data:`ADB_STATE_SCRIPT` and :func:`parse_sysfs_dump`.
"""

from __future__ import annotations

from typing import Any

from edgecompress.artifacts import DeviceState, SustainedStats, WindowStats

# One shell line for Android (toybox sh): every thermal zone's type and temperature, then every
# core's governor and current frequency, as "key value" lines the parser below reads.
ADB_STATE_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; do "
    '[ -r "$z/temp" ] && echo "zone $(cat $z/type 2>/dev/null || basename $z) $(cat $z/temp 2>/dev/null)"; done; '
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
    'f=$c/cpufreq; [ -r "$f/scaling_governor" ] && echo "gov $(basename $c) $(cat $f/scaling_governor)"; '
    '[ -r "$f/scaling_cur_freq" ] && echo "freq $(basename $c) $(cat $f/scaling_cur_freq)"; done; '
    "echo '--- dumpsys thermalservice'; dumpsys thermalservice 2>/dev/null | head -40; true"
)


def state_from_event(event: dict[str, Any] | None) -> DeviceState | None:
    """The ``state_before`` / ``state_after`` object device_runner.py prints."""
    if not isinstance(event, dict):
        return None
    return DeviceState(
        temperatures_c={str(k): float(v) for k, v in (event.get("temperatures_c") or {}).items()},
        governors={str(k): str(v) for k, v in (event.get("governors") or {}).items()},
        freqs_mhz={str(k): float(v) for k, v in (event.get("freqs_mhz") or {}).items()},
    )


def parse_sysfs_dump(text: str) -> DeviceState:
    """Read what :data:`ADB_STATE_SCRIPT` printed (unreadable lines are skipped, not errors)."""
    temps: dict[str, float] = {}
    govs: dict[str, str] = {}
    freqs: dict[str, float] = {}
    head, _, raw = text.partition("--- dumpsys thermalservice")
    for line in head.splitlines():
        parts = line.split()
        try:
            if len(parts) == 3 and parts[0] == "zone":
                # Most kernels report millidegrees; a few report degrees.
                value = float(parts[2])
                temps[parts[1]] = value / 1000.0 if abs(value) > 200 else value
            elif len(parts) == 3 and parts[0] == "gov":
                govs[parts[1]] = parts[2]
            elif len(parts) == 3 and parts[0] == "freq":
                freqs[parts[1]] = float(parts[2]) / 1000.0
        except ValueError:
            continue
    return DeviceState(temperatures_c=temps, governors=govs, freqs_mhz=freqs, raw=raw.strip())


def _window(stats: dict[str, Any]) -> WindowStats:
    if not stats.get("n"):
        return WindowStats(0, 0.0, 0.0, 0.0)
    return WindowStats(int(stats["n"]), float(stats["p50_ms"]), float(stats["p99_ms"]), float(stats["mean_ms"]))


def sustained_from_events(summary: dict[str, Any] | None, bins: list[dict[str, Any]]) -> SustainedStats | None:
    """The ``sustained`` event and the streamed ``bin`` events -> SustainedStats."""
    if not summary:
        return None
    kept = [b for b in bins if b.get("n")]
    return SustainedStats(
        duration_s=float(summary["duration_s"]),
        window_s=float(summary["window_s"]),
        first=_window(summary.get("first", {})),
        last=_window(summary.get("last", {})),
        t_s=tuple(float(b["t_s"]) for b in kept),
        p50_ms=tuple(float(b["p50_ms"]) for b in kept),
        p99_ms=tuple(float(b["p99_ms"]) for b in kept),
        sampled=bool(summary.get("sampled", False)),
    )


def describe_state(state: DeviceState | None) -> str:
    """One line: hottest zone, governors, frequency range (or "unreadable")."""
    if state is None:
        return "not read"
    parts = []
    if state.temperatures_c:
        zone, temp = max(state.temperatures_c.items(), key=lambda kv: kv[1])
        parts.append(f"{temp:.1f} C ({zone}, hottest of {len(state.temperatures_c)} zones)")
    if state.governors:
        parts.append("governor " + ",".join(sorted(set(state.governors.values()))))
    if state.freqs_mhz:
        lo, hi = min(state.freqs_mhz.values()), max(state.freqs_mhz.values())
        parts.append(f"{lo:.0f}-{hi:.0f} MHz" if lo != hi else f"{lo:.0f} MHz")
    return ", ".join(parts) if parts else "thermal zones and cpufreq unreadable"


def describe_sustained(s: SustainedStats) -> str:
    """``first 60 s p50 1.20 ms p99 1.9 ms -> last 60 s p50 1.31 ms (+9.2%) p99 ...``."""
    w = f"{s.window_s:.0f} s" if s.window_s >= 1 else f"{s.window_s:.2f} s"
    return (
        f"{s.duration_s:.0f} s continuous: first {w} p50 {s.first.p50_ms:.3f} ms p99 {s.first.p99_ms:.3f} ms"
        f" -> last {w} p50 {s.last.p50_ms:.3f} ms ({s.drift_p50_pct:+.1f}%) p99 {s.last.p99_ms:.3f} ms ({s.drift_p99_pct:+.1f}%)"
    )
