"""Numeric bounds shared by run configs, profiles and the bench options.

A value is checked for type, finiteness and both ends of its range, and the error names the
field, the value and the allowed range: ``threads = 99999999999 is not allowed (an integer in
[1, 1024])``. Positive-only checks let ``inf`` and ``1e308`` through into JSON as ``Infinity``.
"""

from __future__ import annotations

import math

from edgecompress.errors import EdgeCompressError

MAX_THREADS = 1024
MAX_BUDGET = 1e6  # ms or MB: far beyond any phone or board, small enough to stay finite
MAX_RUNS = 1_000_000_000  # with --max-seconds a huge count just means "until time is up"
MAX_WARMUP = 100_000
MAX_EPOCHS = 100_000
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1  # numpy's seed range


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def check_int(name: str, value: object, lo: int, hi: int, error: type[EdgeCompressError]) -> int:
    """``value`` must be an integer (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise error(f"{name} = {value!r} is not allowed (an integer in [{lo}, {hi}])")
    return value


def check_float(
    name: str, value: object, lo: float, hi: float, error: type[EdgeCompressError], *, lo_open: bool = True
) -> float:
    """``value`` must be a finite number in (lo, hi] (or [lo, hi] with ``lo_open=False``)."""
    bracket = "(" if lo_open else "["
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(x) and (x > lo if lo_open else x >= lo) and x <= hi):
        raise error(f"{name} = {value!r} is not allowed (a finite number in {bracket}{_fmt(lo)}, {_fmt(hi)}])")
    return x
