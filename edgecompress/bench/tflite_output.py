"""Parser for the text TFLite's ``benchmark_model`` prints (Android over adb, or any board).

Formats seen in the wild (RESEARCH.md, public logs), all handled:

    [INFO: |I tflite  : ]count=50 first=1234 curr=1100 min=1050 max=1400 avg=1.1205e+03 std=40 [p5= median= p95=]
    count=1 curr=3512391                                   (the warmup line of older builds)
    Inference timings in us: Init: 25000, First inference: 3000, Warmup (avg): 1500, Inference (avg): 1120.5
    Memory footprint delta from the start of the tool (MB): init=3.2 overall=9.8
    Peak memory footprint (MB): init=4.92969 overall=138.809          (older name of the same)
    Overall peak memory footprint (MB) via periodic monitoring: 12.1
    [node type] [start] [first] [avg ms] [%] [cdf%] [mem KB] [times called] [Name]   (op profiling)

All timings the tool prints are microseconds; everything returned here is milliseconds.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from edgecompress.artifacts import LatencyStats

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# "INFO: ", "WARNING: ", logcat's "I tflite  : ", or nothing.
_PREFIX = re.compile(r"^\s*(?:(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG):\s*|[VDIWEF]\s+[\w.-]+\s*:\s+)?")
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_TIMINGS = re.compile(r"Inference timings in us:\s*(.*)$")
_MEM_DELTA = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")
_MEM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_SESSION = re.compile(rf"Initialized session in\s*({_NUM})\s*ms")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\):\s*({_NUM})")
_OP_ROW = re.compile(
    rf"^\s*(?P<node_type>\S(?:.*?\S)?)\s+(?P<start>{_NUM})\s+(?P<first>{_NUM})\s+(?P<avg>{_NUM})\s+"
    rf"(?P<pct>{_NUM})%\s+(?P<cdf>{_NUM})%\s+(?P<mem>{_NUM})\s+(?P<times>\d+)\s+(?P<name>.+?)\s*$"
)


@dataclasses.dataclass(frozen=True)
class CountLine:
    """One ``count=... first=... avg=...`` line, in microseconds as printed."""

    count: int
    values_us: dict[str, float]

    def get_ms(self, key: str) -> float | None:
        v = self.values_us.get(key)
        return None if v is None else v / 1000.0


@dataclasses.dataclass(frozen=True)
class BenchmarkModelOutput:
    warmup: CountLine | None = None
    runs: CountLine | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_avg_ms: float | None = None
    inference_avg_ms: float | None = None
    mem_init_mb: float | None = None  # footprint delta at init
    mem_overall_mb: float | None = None  # footprint delta over the whole run
    mem_peak_mb: float | None = None  # overall peak via periodic monitoring (whole process)
    session_ms: float | None = None
    model_size_mb: float | None = None
    op_profile: tuple[dict[str, Any], ...] = ()

    def latency(self) -> tuple[LatencyStats, str]:
        """LatencyStats from the counted-runs line, and a note on what stands in for what.

        benchmark_model prints no per-run samples and no p90 / p99: p50 is its median (its
        average when an older build prints no percentiles); p90 is its p95 and p99 its max --
        upper bounds, named as such in the note rather than invented.
        """
        line = self.runs
        if line is None:
            raise ValueError("no counted-runs line")
        avg = line.get_ms("avg")
        if avg is None:
            avg = self.inference_avg_ms
        if avg is None:
            raise ValueError("counted-runs line has no avg")
        mn = line.get_ms("min") if line.get_ms("min") is not None else avg
        mx = line.get_ms("max") if line.get_ms("max") is not None else avg
        median, p95 = line.get_ms("median"), line.get_ms("p95")
        notes = [
            "p50 = median" if median is not None else "p50 = avg (this benchmark_model build prints no median)",
            "p90 = p95 (upper bound; the tool prints no p90)" if p95 is not None else "p90 = max (upper bound; no percentiles printed)",
            "p99 = max (upper bound; the tool prints no p99)",
        ]
        stats = LatencyStats(
            mean_ms=avg,
            std_ms=line.get_ms("std") or 0.0,
            min_ms=mn,
            max_ms=mx,
            p50_ms=median if median is not None else avg,
            p90_ms=p95 if p95 is not None else mx,
            p99_ms=mx,
        )
        return stats, "; ".join(notes)


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def _count_line(text: str) -> CountLine | None:
    if not text.startswith("count="):
        return None  # "Timings (microseconds): count=..." belongs to the op-profiling block
    values = {k: float(v) for k, v in _PAIR.findall(text)}
    return CountLine(int(values.pop("count")), values)


def _timings(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        label, _, value = part.partition(":")
        try:
            out[label.strip().lower()] = float(value.strip())
        except ValueError:
            continue
    return out


def _op_row(text: str) -> dict[str, Any] | None:
    m = _OP_ROW.match(text)
    if m is None:
        return None
    return {
        "node_type": m["node_type"],
        "start_ms": float(m["start"]),
        "first_ms": float(m["first"]),
        "avg_ms": float(m["avg"]),
        "percent": float(m["pct"]),
        "cdf_percent": float(m["cdf"]),
        "mem_kb": float(m["mem"]),
        "times_called": int(m["times"]),
        "name": m["name"],
    }


def parse_benchmark_model_output(text: str) -> BenchmarkModelOutput:
    """Parse everything benchmark_model printed; unknown lines are ignored."""
    counts: list[tuple[int, CountLine]] = []  # (index of the "Running benchmark" block, line)
    blocks = 0
    found: dict[str, Any] = {}
    ops: list[dict[str, Any]] = []
    section = ""  # "init" | "runs" | "" (no header: older builds print only the runs)
    table = ""
    for raw in text.splitlines():
        line = _strip(raw)
        if line.startswith("Running benchmark for"):
            blocks += 1
            continue
        if "Profiling Info for Benchmark Initialization" in line:
            section = "init"
            continue
        if "Profiling Info for Regular Benchmark Runs" in line:
            section = "runs"
            continue
        if line.startswith("====="):
            table = "run_order" if "Run Order" in line else "other"
            continue
        if (c := _count_line(line)) is not None:
            counts.append((blocks, c))
            continue
        if (m := _TIMINGS.search(line)) is not None:
            t = _timings(m.group(1))
            found.update(
                init_ms=t.get("init"),
                first_inference_ms=t.get("first inference"),
                warmup_avg_ms=t.get("warmup (avg)"),
                inference_avg_ms=t.get("inference (avg)"),
            )
            continue
        if (m := _MEM_DELTA.search(line)) is not None:
            found.update(mem_init_mb=float(m.group(1)), mem_overall_mb=float(m.group(2)))
            continue
        if (m := _MEM_PEAK.search(line)) is not None:
            found["mem_peak_mb"] = float(m.group(1))
            continue
        if (m := _SESSION.search(line)) is not None:
            found["session_ms"] = float(m.group(1))
            continue
        if (m := _MODEL_SIZE.search(line)) is not None:
            found["model_size_mb"] = float(m.group(1))
            continue
        if table == "run_order" and section != "init" and (row := _op_row(line)) is not None:
            ops.append(row)
    for key in ("init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms"):
        if found.get(key) is not None:
            found[key] = found[key] / 1000.0  # printed in microseconds
    warmup, runs = _split_counts(counts)
    return BenchmarkModelOutput(warmup=warmup, runs=runs, op_profile=tuple(ops), **found)


def _split_counts(counts: list[tuple[int, CountLine]]) -> tuple[CountLine | None, CountLine | None]:
    """Which count line is the warmup and which the counted runs.

    The tool prints a "Running benchmark for ..." header before each block: the first block is
    the warmup, the second the counted runs. Without headers the last line is the runs.
    """
    if not counts:
        return None, None
    by_block = {b: c for b, c in counts}
    if max(by_block) >= 2:
        return by_block.get(1), by_block[max(by_block)]
    if len(counts) >= 2:
        return counts[0][1], counts[-1][1]
    block, line = counts[0]
    # A lone line right after the first header is a warmup whose counted runs never came.
    return (line, None) if block == 1 else (None, line)
