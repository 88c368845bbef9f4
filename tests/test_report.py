"""The report renders every section from a summary dict, and summary.json holds the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

from edgecompress.artifacts import BenchmarkResult, LatencyStats
from edgecompress.profiles import load_profile
from edgecompress.report import render_report


def _summary() -> dict:
    prof = load_profile("pixel7")
    bench = BenchmarkResult(device="host", runner="local", runtime="litert", runtime_version="2.1.0", artifact="x/model_full_int8.tflite", precision="full-int8", threads=1, warmup_runs=2, num_runs=5, latency=LatencyStats.from_samples([0.11, 0.12, 0.13, 0.2, 0.1]), samples_ms=(0.11, 0.12, 0.13, 0.2, 0.1), peak_mem_mb=3.5)
    return {
        "headline": "test headline",
        "profile": prof.to_dict(),
        "selection": {
            "chosen": {"family": "mobile", "arch": "ir_r1_k3_s1_e1_c16"},
            "criterion": "largest MACs that fits",
            "candidates": [
                {"family": "mobile", "arch": "ir_r1_k3_s1_e1_c16", "macs": 2_000_000, "params": 10_000, "latency_ms": 0.4, "peak_ram_mb": 1.0, "size_mb": 0.1, "fits": True, "chosen": True},
                {"family": "resnet", "arch": "bb_r2_c64", "macs": 90_000_000, "params": 500_000, "latency_ms": 3.0, "peak_ram_mb": 4.0, "size_mb": 2.0, "fits": False},
            ],
        },
        "training": {"teacher": "t.pt2", "config": {"method": "anc+align"}, "final": {"test_acc": 0.91, "val_agreement": 0.95}, "history": [{"epoch": 0, "loss_kd": 1.0, "val_acc": 0.5}, {"epoch": 1, "loss_kd": 0.5, "val_acc": 0.8}]},
        "artifacts": [{"path": "x/model_full_int8.tflite", "format": "tflite", "precision": "full-int8", "size_bytes": 20480, "parity": {"n_samples": 200, "max_abs_diff": None, "top1_agreement": 0.995, "acc_reference": 0.9, "acc_artifact": 0.9, "acc_delta_pt": 0.0, "passed": True}}],
        "benchmarks": [bench.to_dict()],
        "predicted_vs_measured": [{"label": "local:model_full_int8.tflite", "predicted_ms": 0.1, "measured_p50_ms": 0.12, "error_pct": -16.7}],
        "verdict": {"latency_ms": 0.4, "latency_ok": True, "peak_ram_mb": 1.0, "ram_ok": True, "size_mb": 0.02, "size_ok": True},
        "environment": {"python": "3.11"},
        "stages": {"select": 0.5, "distill": 60.0},
        "resumed_stages": ["select"],
    }


def test_report_renders_all_sections(tmp_path: Path) -> None:
    summary = _summary()
    html_path = render_report(summary, tmp_path)
    page = html_path.read_text()
    for section in ("Device profile: pixel7", "Student selection", "Distillation", "Parity against PyTorch", "Measured latency", "Predicted vs measured", "Environment"):
        assert section in page, section
    # plots are embedded, not linked
    assert page.count("data:image/png;base64,") >= 4
    assert "src='http" not in page
    assert json.loads((tmp_path / "summary.json").read_text())["selection"]["candidates"][0]["arch"] == "ir_r1_k3_s1_e1_c16"


def test_report_escapes_html(tmp_path: Path) -> None:
    summary = _summary()
    summary["selection"]["chosen"]["arch"] = "<script>alert(1)</script>"
    page = render_report(summary, tmp_path).read_text()
    assert "<script>alert(1)</script>" not in page
