"""`edgecompress build` end to end on tiny settings: every stage, the report, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.profiles import builtin_profiles_dir


@pytest.fixture(scope="module")
def teacher() -> Path:
    from edgecompress.distill import demo_teacher

    return demo_teacher("digits", steps=40, progress=False)  # a quick, cached digits teacher


@pytest.fixture()
def profiles(tmp_path: Path) -> Path:
    # The host profile with fp32 only and a loose budget: a 5-step student is not trained
    # enough for the int8 parity gate (the exporter's own tests cover int8).
    text = (builtin_profiles_dir() / "host.toml").read_text()
    text = text.replace('name = "host"', 'name = "ci-host"').replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]')
    text = text.replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0")
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "ci-host.toml").write_text(text)
    return d


def _args(profiles: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return [
        "build", "--device", "ci-host", "--profiles-dir", str(profiles), "--teacher", str(teacher),
        "--data", "digits", "--method", "kd", "--epochs", "1", "--steps-per-epoch", "5",
        "--runs", "20", "--warmup", "2", "--out", str(out), "--quiet", *extra,
    ]


@pytest.mark.slow
def test_build_end_to_end_then_resume(tmp_path: Path, profiles: Path, teacher: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, _args(profiles, teacher, out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selection"]["candidates"] and any(c["chosen"] for c in summary["selection"]["candidates"])
    assert summary["training"]["history"] and "val_acc" in summary["training"]["history"][-1]
    assert [a["precision"] for a in summary["artifacts"]] == ["fp32"]
    assert all(a["parity"]["passed"] for a in summary["artifacts"])
    assert summary["benchmarks"][0]["latency"]["p50_ms"] > 0
    assert summary["resumed_stages"] == []
    # The student next to its teacher: at least the default 8x fewer MACs, and every ratio shown.
    comp = summary["compression"]
    assert comp["target_x"] == 8.0 and comp["macs_x"] >= 8.0 and comp["params_x"] > 1 and comp["size_x"] > 1
    assert comp["teacher"]["test_acc"] is not None and comp["student"]["test_agreement"] is not None
    assert "compress " in res.output and "fewer MACs than the teacher" in res.output
    html = (out / "report.html").read_text()
    assert "Parity against PyTorch" in html and html.count("data:image/png;base64,") >= 3
    assert "Student vs teacher" in html
    for f in ("run_config.json", "spec.json", "candidates.json", "distill/checkpoint.json", "build.json"):
        assert (out / f).exists(), f
    weights = out / "distill" / "student.pt"
    mtime = weights.stat().st_mtime_ns

    # Same command again: every stage resumes, nothing retrains.
    res = runner.invoke(cli, _args(profiles, teacher, out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_stages"] == ["select", "distill", "export", "bench"]
    assert weights.stat().st_mtime_ns == mtime

    # A changed training option re-runs distillation and everything after it, not selection.
    res = runner.invoke(cli, [*_args(profiles, teacher, out), "--steps-per-epoch", "6"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["resumed_stages"] == ["select"]

    # --force starts over.
    res = runner.invoke(cli, [*_args(profiles, teacher, out), "--steps-per-epoch", "6", "--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["resumed_stages"] == []

    # A changed compression target re-runs selection and everything after it.
    res = runner.invoke(cli, [*_args(profiles, teacher, out), "--compress", "12x"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_stages"] == [] and summary["compression"]["macs_x"] >= 12


def _fails_before_training(res, out: Path, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (out / "distill").exists()


def test_build_missing_teacher(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--teacher", str(tmp_path / "nope.pt2"), "--data", "digits", "--out", str(out)])
    _fails_before_training(res, out, "nope.pt2")


def test_build_corrupt_teacher(tmp_path: Path) -> None:
    bad = tmp_path / "teacher.pt2"
    bad.write_bytes(b"\x00not a program" * 10)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--teacher", str(bad), "--data", "digits", "--out", str(out)])
    _fails_before_training(res, out, "teacher.pt2")


def test_build_missing_data(tmp_path: Path, teacher: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--teacher", str(teacher), "--data", str(tmp_path / "nodata"), "--out", str(out)])
    _fails_before_training(res, out, "nodata")


def test_build_unknown_device(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--device", "nokia3310", "--out", str(out)])
    _fails_before_training(res, out, "nokia3310", "pixel7")


def test_build_teacher_data_mismatch(tmp_path: Path, teacher: Path) -> None:
    out = tmp_path / "run"
    data = "shapes:train=200,val=100,test=100"  # 3x32x32, 12 classes vs the 1x16x16, 10-class teacher
    res = CliRunner().invoke(cli, ["build", "--device", "host", "--teacher", str(teacher), "--data", data, "--out", str(out)])
    _fails_before_training(res, out, "teacher")


def test_build_bad_run_config(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('device = "host"\nlabeled_fraction = 2.0\n')
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--config", str(cfg), "--out", str(out)])
    _fails_before_training(res, out, "labeled_fraction")


@pytest.mark.slow
def test_build_qat_builds_int8_from_the_fine_tune_and_is_part_of_the_export_key(tmp_path: Path, teacher: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "ci-host8"')
    (profiles / "ci-host8.toml").write_text(text.replace("latency_budget_ms = 0.5", "latency_budget_ms = 5.0"))
    out = tmp_path / "run"
    args = [a if a != "ci-host" else "ci-host8" for a in _args(profiles, teacher, out)]
    res = CliRunner().invoke(cli, [*args, "--qat"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    int8 = [a for a in summary["export_attempts"] if a["precision"] == "int8"]
    assert int8 and int8[0]["step"] == "qat"  # no PTQ attempt first
    assert json.loads((out / "run_config.json").read_text())["qat"] is True
    # Without --qat the export (and what follows) runs again; selection and training resume.
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_stages"] == ["select", "distill"]
    assert [a["step"] for a in summary["export_attempts"] if a["precision"] == "int8"][0] != "qat"
