"""Add an export format: one file (tests/add_an_x/toy_format.py), parity-gated, benchmarked and
deployed by `build` through a runtime that names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_toy_export_format_goes_through_build(tmp_path: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy("toy_format")  # the one registration: importing the file
    from edgecompress.distill import demo_teacher
    from edgecompress.pipeline import build
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "toy-opt"')
    text = text.replace('kind = "onnxruntime-cpu"', 'kind = "toy-ort-opt"').replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]')
    text = text.replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0")
    (tmp_path / "toy-opt.toml").write_text(text)
    report = build(device="toy-opt", profiles_dir=str(tmp_path), teacher=str(demo_teacher("digits", steps=40, progress=False)),
                   data="digits", method="kd", compress="2", epochs=1, steps_per_epoch=3, runs=5, warmup=1,
                   out=str(tmp_path / "run"), quiet=True)
    (art,) = report.artifacts
    assert art.format == "onnx-opt" and Path(art.path).name == "model_fp32_opt.onnx" and art.parity.passed
    assert art.op_counts and report.benchmarks and report.benchmarks[0].latency.p50_ms > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["verdict"]["deployed_artifact"].endswith("model_fp32_opt.onnx")
