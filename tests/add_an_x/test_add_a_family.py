"""Add a student family: one file (tests/add_an_x/toy_family.py), chosen and trained by `build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_toy_family_goes_through_build(tmp_path: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy("toy_family")  # the one registration: importing the file
    from edgecompress.distill import demo_teacher
    from edgecompress.pipeline import build
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "toy-host"')
    text = text.replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]').replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0")
    (tmp_path / "toy-host.toml").write_text(text)
    report = build(device="toy-host", profiles_dir=str(tmp_path), teacher=str(demo_teacher("digits", steps=40, progress=False)),
                   data="digits", method="kd", families=("toy-mlp",), compress="2", epochs=1, steps_per_epoch=3,
                   runs=5, warmup=1, out=str(tmp_path / "run"), quiet=True)
    assert report.spec.family == "toy-mlp" and report.spec.arch == "hidden32"  # the largest that fits
    rows = json.loads((tmp_path / "run" / "candidates.json").read_text())
    assert {r["label"] for r in rows} == {"h8", "h16", "h32"} and all(r["macs"] > 0 for r in rows)
    assert report.artifacts and all(a.parity is not None and a.parity.passed for a in report.artifacts)
