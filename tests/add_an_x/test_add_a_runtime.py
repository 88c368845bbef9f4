"""Add a device runtime: one file (tests/add_an_x/toy_runtime.py), a profile using it, `build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _profile(tmp_path: Path) -> Path:
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "toy-board"')
    text = text.replace('kind = "onnxruntime-cpu"', 'kind = "toy-ort"').replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]')
    text = text.replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0")
    (tmp_path / "toy-board.toml").write_text(text)
    return tmp_path


def test_unknown_runtime_lists_the_registered_ones(tmp_path: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy("toy_runtime")
    from edgecompress.errors import ProfileError
    from edgecompress.profiles import load_profile

    (tmp_path / "p.toml").write_text(_profile(tmp_path).joinpath("toy-board.toml").read_text().replace("toy-ort", "tensorrt"))
    with pytest.raises(ProfileError, match=r"tensorrt.*allowed: tflite-xnnpack, onnxruntime-cpu, toy-ort"):
        load_profile(str(tmp_path / "p.toml"))


@pytest.mark.slow
def test_a_toy_runtime_goes_through_build(tmp_path: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy_runtime = toy("toy_runtime")  # the one registration: importing the file
    from edgecompress.distill import demo_teacher
    from edgecompress.pipeline import build

    report = build(device="toy-board", profiles_dir=str(_profile(tmp_path)),
                   teacher=str(demo_teacher("digits", steps=40, progress=False)), data="digits", method="kd",
                   compress="2", epochs=1, steps_per_epoch=3, runs=5, warmup=1, out=str(tmp_path / "run"), quiet=True)
    assert [a.format for a in report.artifacts] == ["onnx"] and report.benchmarks
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["profile"]["runtime"]["kind"] == "toy-ort" and summary["verdict"]["deployed_artifact"].endswith(".onnx")
    # The peak-RAM model adds this runtime's own overhead.
    chosen = next(r for r in json.loads((tmp_path / "run" / "candidates.json").read_text()) if r["chosen"])
    assert chosen["peak_ram_mb"] > toy_runtime.TOY.ram_overhead_mb
