from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecompress.artifacts import (
    BenchmarkResult,
    Checkpoint,
    CostEstimate,
    DataRef,
    ExportArtifact,
    InputSpec,
    LatencyStats,
    ParityReport,
    Preprocessing,
    StudentSpec,
    atomic_write_text,
)
from edgecompress.build_report import BuildReport
from edgecompress.errors import ConfigError

PRE = Preprocessing(input_shape=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
COST = CostEstimate(macs=1_000_000, params=20_000, peak_activation_bytes=65_536, size_bytes={"fp32": 80_000, "int8": 20_000}, predicted_latency_ms=0.3)
SPEC = StudentSpec(family="mobile", arch="cbr_k3_s2_c16|ir_r2_k3_s2_e6_c24", input_shape=(3, 32, 32), num_classes=10, width_mult=0.5, cost=COST, extra={"note": [1, 2]})
CKPT = Checkpoint(weights="student.pt", sha256="ab" * 32, spec=SPEC, preprocessing=PRE, data=DataRef(source="shapes", labeled_fraction=0.1), distill_config={"method": "anc"}, metrics={"val_acc": 0.9}, class_names=("a", "b"))
PARITY = ParityReport(n_samples=100, top1_agreement=0.99, acc_reference=0.9, acc_artifact=0.89, acc_delta_pt=-1.0, max_abs_diff=None, passed=True, thresholds={"int8_agreement": 0.99})
ART = ExportArtifact(path="model_int8.onnx", format="onnx", precision="int8", input=InputSpec(name="input", shape=(1, 3, 32, 32), dtype="float32", layout="NCHW", preprocessing=PRE), size_bytes=1234, sha256="cd" * 32, op_counts={"Conv": 3, "Transpose": 0}, parity=PARITY)
BENCH = BenchmarkResult(device="host", runner="local", runtime="onnxruntime", runtime_version="1.23.0", artifact="model_int8.onnx", precision="int8", threads=1, warmup_runs=10, num_runs=100, latency=LatencyStats.from_samples([1.0, 2.0, 3.0]), peak_mem_mb=50.0, samples_ms=(1.0, 2.0, 3.0))
ALL = [PRE, COST, SPEC, CKPT, PARITY, ART, BENCH, BuildReport(device="pixel7", spec=SPEC, checkpoint="c.json", artifacts=(ART,), benchmarks=(BENCH,), report_html="report.html", wall_s=12.5)]


@pytest.mark.parametrize("obj", ALL, ids=lambda o: type(o).__name__)
def test_json_round_trip(obj: object, tmp_path: Path) -> None:
    cls = type(obj)
    assert cls.from_json(obj.to_json()) == obj  # type: ignore[attr-defined]
    path = obj.save(tmp_path / "x.json")  # type: ignore[attr-defined]
    assert cls.load(path) == obj  # type: ignore[attr-defined]


def test_unknown_key_rejected() -> None:
    data = json.loads(SPEC.to_json())
    data["depth"] = 3
    with pytest.raises(ConfigError, match="unknown key 'depth'"):
        StudentSpec.from_dict(data, "spec.json")


def test_wrong_kind_and_type() -> None:
    with pytest.raises(ConfigError, match="expected 'checkpoint'"):
        Checkpoint.from_json(SPEC.to_json(), "spec.json")
    data = json.loads(SPEC.to_json())
    data["num_classes"] = "ten"
    with pytest.raises(ConfigError, match="num_classes: expected an integer"):
        StudentSpec.from_dict(data)


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Checkpoint.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="file not found"):
        Checkpoint.load(tmp_path / "missing.json")


def test_latency_stats_percentiles() -> None:
    s = LatencyStats.from_samples([float(i) for i in range(1, 101)])
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.min_ms == 1 and s.max_ms == 100


def test_atomic_write_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "out.json"

    class Boom(str):
        def encode(self, *a: object, **k: object) -> bytes:  # type: ignore[override]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, Boom("x"))
    assert list(tmp_path.iterdir()) == []


def test_a_spec_written_before_its_fields_were_typed_still_loads(tmp_path: Path) -> None:
    """label / kept / select lived in ``extra``: an old spec.json loads into the typed fields."""
    old = {"kind": "student_spec", "schema_version": 1, "family": "pruned-teacher", "arch": "keep0.5",
           "input_shape": [3, 32, 32], "num_classes": 10, "width_mult": 1.0, "cost": None,
           "extra": {"label": "keep0.5", "kept": {"stem": 8}, "probe": 3,
                     "select": {"device": "pixel7", "criterion": "c", "precision": "int8", "budget": {"latency_budget_ms": 1.0},
                                "predicted_latency_ms": 0.5, "peak_ram_mb": 2.0, "size_mb": 0.1, "latency_source": "priors",
                                "candidates": 4, "fitting": 2, "compress_target": 8.0, "compression_x": 9.5,
                                "teacher": {"macs": 100, "params": 10, "source": "graph", "size_bytes": None, "precision": None,
                                            "predicted_latency_ms": None, "peak_ram_mb": None, "size_mb": None}}}}
    (tmp_path / "spec.json").write_text(json.dumps(old))
    spec = StudentSpec.load(tmp_path / "spec.json")
    assert spec.label == "keep0.5" and spec.kept == {"stem": 8} and spec.extra == {"probe": 3}
    assert spec.selection is not None and spec.selection.teacher is not None and spec.selection.teacher.macs == 100
    assert StudentSpec.from_json(spec.to_json()) == spec
    # Resume keys hash the spec as it was stored then, so run folders made before still resume.
    assert spec.key_dict() == old
    old["extra"]["kept"] = {"stem": "eight"}
    with pytest.raises(ConfigError, match=r"extra\.kept\.stem: expected an integer"):
        StudentSpec.from_dict(old)
