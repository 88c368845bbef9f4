"""Add a loss term: one file (tests/add_an_x/toy_loss.py), run through `build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_toy_loss_term_trains_through_build(tmp_path: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy_loss = toy("toy_loss")  # the one registration: importing the file that declares it
    from edgecompress.distill import demo_teacher
    from edgecompress.pipeline import build
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "toy-host"')
    text = text.replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]').replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0")
    (tmp_path / "toy-host.toml").write_text(text)
    report = build(device="toy-host", profiles_dir=str(tmp_path), teacher=str(demo_teacher("digits", steps=40, progress=False)),
                   data="digits", method="kd", loss_weights={"toy_margin": 0.5}, epochs=1, steps_per_epoch=3,
                   runs=5, warmup=1, out=str(tmp_path / "run"), quiet=True)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "distill" / "metrics.jsonl").read_text().splitlines()]
    assert "toy_margin" in metrics[-1]["loss"] and toy_loss.CALLS["loss"] >= 3 and toy_loss.CALLS["disc"] >= 3
    assert report.artifacts and all(a.parity is not None and a.parity.passed for a in report.artifacts)
