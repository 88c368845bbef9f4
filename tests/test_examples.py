"""Every example runs as written (with the package's console script on PATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(script: str, out: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the venv's edgecompress / python
    env["OUT"] = str(out)
    env["EPOCHS"] = "1"
    res = subprocess.run(["bash", str(EXAMPLES / script)], capture_output=True, text=True, env=env, timeout=timeout, cwd=out)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_custom_profile(tmp_path: Path) -> None:
    res = _run("custom_profile/run.sh", tmp_path)
    assert "myboard" in res.stdout and "Cortex-A53" in res.stdout
    spec = json.loads((tmp_path / "myboard_spec.json").read_text())
    assert spec["kind"] == "student_spec" and spec["cost"]["predicted_latency_ms"] <= 5.0


@pytest.mark.slow
def test_distill_only(tmp_path: Path) -> None:
    _run("distill_only/run.sh", tmp_path)
    ckpt = json.loads((tmp_path / "distill" / "checkpoint.json").read_text())
    assert ckpt["kind"] == "checkpoint" and ckpt["distill_config"]["method"] == "anc-labelfree"


@pytest.mark.slow
def test_export_only(tmp_path: Path) -> None:
    _run("export_only/run.sh", tmp_path)
    names = {p.name for p in (tmp_path / "export").iterdir()}
    assert {"model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_full_int8.tflite"} <= names


@pytest.mark.slow
def test_bring_your_own_teacher(tmp_path: Path) -> None:
    res = _run("bring_your_own_teacher/run.sh", tmp_path)
    assert "teacher: test accuracy" in res.stdout
    summary = json.loads((tmp_path / "byot" / "summary.json").read_text())
    assert summary["training"]["teacher"].endswith("teacher.pt2")
    assert (tmp_path / "byot" / "report.html").exists()
