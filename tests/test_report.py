"""The report renders every section from a summary dict, and summary.json holds the same numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgecompress.artifacts import (
    BenchmarkResult,
    ExportArtifact,
    InputSpec,
    LatencyStats,
    ParityReport,
    Preprocessing,
    StudentSpec,
)
from edgecompress.build_report import (
    BuildSummary,
    CandidateRow,
    PredictedVsMeasured,
    SelectionRecord,
    TrainingRecord,
    Verdict,
)
from edgecompress.cli.build_cmd import one_screen
from edgecompress.profiles import load_profile
from edgecompress.report import render_report


def _summary() -> BuildSummary:
    prof = load_profile("pixel7")
    bench = BenchmarkResult(device="host", runner="local", runtime="litert", runtime_version="2.1.0", artifact="x/model_full_int8.tflite", precision="full-int8", threads=1, warmup_runs=2, num_runs=5, latency=LatencyStats.from_samples([0.11, 0.12, 0.13, 0.2, 0.1]), samples_ms=(0.11, 0.12, 0.13, 0.2, 0.1), peak_mem_mb=3.5)
    pre = Preprocessing(input_shape=(3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
    parity = ParityReport(n_samples=200, top1_agreement=0.995, acc_reference=0.9, acc_artifact=0.9, acc_delta_pt=0.0, max_abs_diff=None, passed=True)
    art = ExportArtifact(path="x/model_full_int8.tflite", format="tflite", precision="full-int8", size_bytes=20480, sha256="ab" * 32, op_counts={},
                         input=InputSpec(name="x", shape=(1, 32, 32, 3), dtype="int8", layout="NHWC", preprocessing=pre), parity=parity,
                         quant_settings={"weight_bits": 8, "weight_bits_reason": "avx512_vnni: int32 dot products", "io": "int8"})
    row = {"family": "mobile", "label": "ir_r1_k3_s1_e1_c16", "arch": "ir_r1_k3_s1_e1_c16", "width_mult": 1.0, "macs": 2_000_000, "params": 10_000,
           "precision": "int8", "latency_ms": 0.4, "peak_ram_mb": 1.0, "size_mb": 0.1, "fits": True, "chosen": True,
           "latency_upper_ms": 0.44}
    over = {**row, "family": "resnet", "label": "bb_r2_c64", "arch": "bb_r2_c64", "macs": 90_000_000, "latency_ms": 3.0, "fits": False, "over": ("latency",), "chosen": False}
    return BuildSummary(
        headline="test headline", config={}, profile=prof,
        selection=SelectionRecord(chosen=StudentSpec("mobile", "ir_r1_k3_s1_e1_c16", (3, 32, 32), 10), criterion="largest MACs that fits",
                                  latency_source="priors", candidates=(CandidateRow(**row), CandidateRow(**over))),
        training=TrainingRecord(teacher="t.pt2", config={"method": "anc+align"}, final={"test_acc": 0.91, "val_agreement": 0.95},
                                history=({"epoch": 0, "loss_kd": 1.0, "val_acc": 0.5}, {"epoch": 1, "loss_kd": 0.5, "val_acc": 0.8})),
        artifacts=(art,), export_attempts=(), benchmarks=(bench,),
        predicted_vs_measured=(PredictedVsMeasured("local:model_full_int8.tflite", 0.1, 0.12, -16.7),), latency_note="",
        verdict=Verdict(deployed_artifact=art.path, deployed_precision="full-int8", deployed_reason="", deployed_fallback=False,
                        latency_ms=0.4, latency_source="predicted", latency_ok=True, peak_ram_mb=1.0, peak_ram_source="predicted",
                        ram_ok=True, size_mb=0.02, size_ok=True, all_ok=True, why=""),
        compression=None, environment={"python": "3.11"}, stages={"select": 0.5, "distill": 60.0}, resumed_stages=("select",), wall_s=61.0,
    )


def test_report_renders_all_sections(tmp_path: Path) -> None:
    summary = _summary()
    html_path = render_report(summary, tmp_path)
    page = html_path.read_text()
    assert "0.4 (≤ 0.44)" in page
    assert "weight_bits_reason: avx512_vnni: int32 dot products" in page  # the interval's upper end the budget was checked on
    for section in ("Device profile: pixel7", "Student selection", "Distillation", "Parity against PyTorch", "Measured latency", "Predicted vs measured", "Environment"):
        assert section in page, section
    # plots are embedded, not linked
    assert page.count("data:image/png;base64,") >= 4
    assert "src='http" not in page
    assert json.loads((tmp_path / "summary.json").read_text())["selection"]["candidates"][0]["arch"] == "ir_r1_k3_s1_e1_c16"


def test_report_escapes_html(tmp_path: Path) -> None:
    summary = _summary()
    chosen = dataclasses.replace(summary.selection.chosen, arch="<script>alert(1)</script>", label="<script>alert(1)</script>")
    summary = dataclasses.replace(summary, selection=dataclasses.replace(summary.selection, chosen=chosen))
    page = render_report(summary, tmp_path).read_text()
    assert "<script>alert(1)</script>" not in page


def test_summary_json_round_trips_and_the_cli_screen_reads_the_same_object(tmp_path: Path) -> None:
    summary = _summary()
    render_report(summary, tmp_path)
    again = BuildSummary.load(tmp_path / "summary.json")
    assert again == summary
    screen = one_screen(again, "report.html")
    assert "top-1 agreement 99.5%" in screen and "0.400 ms (budget" in screen


def test_summary_json_with_a_misspelled_key_fails_in_one_line(tmp_path: Path) -> None:
    import pytest

    from edgecompress.errors import ConfigError

    render_report(_summary(), tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    data["verdict"]["latency_okay"] = data["verdict"].pop("latency_ok")
    with pytest.raises(ConfigError, match="verdict: unknown key 'latency_okay'"):
        BuildSummary.from_dict(data)
