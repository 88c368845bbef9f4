"""Interleaved measurement rounds, gated by the machine's state.

A shared machine disturbs timings in two ways, and each needs its own defence:

- **Short bursts** hit one round of one model. Every model is measured in several interleaved
  rounds and the fastest kept; a model whose two fastest rounds disagree by more than
  ``AGREE_PCT`` gets extra rounds (up to ``EXTRA_ROUNDS``) until two agree.
- **Long slow states** hit every model for minutes, and then two rounds agree with each other
  while both are slow. Seen on the Intel AMX VM (``latency_predictor.py`` seed 16, right after a
  30-minute conversion phase): the first probes' two rounds agreed within 3% while running an
  estimated 30-70% slower than their neighbours in width, and the fit learnt part of that slow
  state. A *sentinel* (one fixed model,
  timed before every ``GATE_BLOCK`` measurements) exposes such states: a round measured while
  the sentinel ran more than ``GATE_PCT`` slower than its confirmed best does not count.

The gate is judged in hindsight after every round, over all the sentinel's readings so far:
blocks measured early in a slow state are rejected once the machine has shown it can run
faster, and their models get extra rounds. The confirmed best is the sentinel's *second*
fastest reading, so one lucky reading does not set the bar. A machine that is slow throughout
is consistent with itself and passes the gate. When the extra rounds run out, a model with no
clean round keeps its fastest round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

# Extra rounds for a model whose two fastest (clean) round medians are more than AGREE_PCT apart.
AGREE_PCT = 3.0
EXTRA_ROUNDS = 3
# A round counts only if the sentinel timed just before it was within GATE_PCT of its confirmed best.
# Wide enough for a file's undisturbed spread (its two fastest rounds agreed within a median
# 0.7-1.4% on the seed-16 run), narrow enough for the slow states it is there for (30-70%);
# bursts shorter than a block are the two-fastest rule's job.
GATE_PCT = 10.0
GATE_BLOCK = 4


def unsettled(rounds: Sequence[float], agree_pct: float = AGREE_PCT) -> bool:
    """Whether a model's round medians have no two fastest within ``agree_pct`` of each other
    (a single round is settled: there is nothing to compare it with)."""
    if len(rounds) < 2:
        return False
    a, b = sorted(rounds)[:2]
    return (b - a) / a * 100.0 > agree_pct


@dataclasses.dataclass
class Rounds:
    """Every model's round figures, the sentinel block each was measured in, and the sentinel's readings."""

    figures: dict[int, list[float]]
    blocks: dict[int, list[int]]
    sentinel: list[float] = dataclasses.field(default_factory=list)
    gate_pct: float = GATE_PCT

    def reference(self) -> float | None:
        """The sentinel's confirmed best: its second fastest reading (the only one if just one)."""
        if not self.sentinel:
            return None
        s = sorted(self.sentinel)
        return s[1] if len(s) > 1 else s[0]

    def clean_flags(self, i: int) -> list[bool]:
        """Per round of model ``i``: measured while the machine ran at its confirmed best."""
        ref = self.reference()
        if ref is None:
            return [True] * len(self.figures[i])
        limit = ref * (1.0 + self.gate_pct / 100.0)
        return [self.sentinel[b] <= limit for b in self.blocks[i]]

    def clean(self, i: int) -> list[float]:
        return [f for f, ok in zip(self.figures[i], self.clean_flags(i), strict=True) if ok]

    def best(self, i: int) -> int:
        """Index of model ``i``'s fastest clean round (its fastest round when none is clean)."""
        flags = self.clean_flags(i)
        pool = [r for r, ok in enumerate(flags) if ok] or list(range(len(flags)))
        return min(pool, key=lambda r: self.figures[i][r])

    def needs_more(self, i: int, repeats: int) -> bool:
        """Fewer clean rounds than the ``repeats`` asked for (at most two needed), or the two fastest disagree."""
        c = self.clean(i)
        return len(c) < min(2, repeats) or unsettled(c)

    def summary(self) -> dict[str, Any]:
        """What the gate saw: its readings, the bar, and how many rounds it rejected."""
        per_model = [self.clean_flags(i) for i in self.figures]
        flags = [ok for f in per_model for ok in f]
        ref = self.reference()
        return {"sentinel_readings": len(self.sentinel), "sentinel_best_ms": None if ref is None else round(ref, 4),
                "sentinel_worst_ms": round(max(self.sentinel), 4) if self.sentinel else None, "gate_pct": self.gate_pct,
                "rounds": len(flags), "rounds_rejected": flags.count(False),
                "models_without_clean_round": sum(not any(f) for f in per_model),
                "sentinel_ms": [round(v, 4) for v in self.sentinel]}  # in time order: the machine's state over the run


def run_rounds(n: int, measure: Callable[[int], float], *, repeats: int, extra_rounds: int,
               sentinel: Callable[[], float] | None = None, block: int = GATE_BLOCK, gate_pct: float = GATE_PCT,
               on_round: Callable[[int, int], None] | None = None) -> Rounds:
    """Measure models ``0..n-1`` in interleaved rounds: all of them ``repeats`` times, then, at most
    ``extra_rounds`` more times, those that ``needs_more``. ``measure(i)`` takes one measurement
    (the caller keeps whatever else it returns) and gives its figure; ``sentinel()``, when given,
    is timed before every ``block`` measurements. ``on_round(r, count)`` is told each round's size."""
    st = Rounds({i: [] for i in range(n)}, {i: [] for i in range(n)}, gate_pct=gate_pct)
    for r in range(repeats + extra_rounds):
        todo = list(range(n)) if r < repeats else [i for i in range(n) if st.needs_more(i, repeats)]
        if not todo:
            break
        if on_round is not None:
            on_round(r, len(todo))
        for j, i in enumerate(todo):
            if sentinel is not None and j % block == 0:
                st.sentinel.append(sentinel())
            st.figures[i].append(measure(i))
            st.blocks[i].append(len(st.sentinel) - 1)
    return st
