"""What the catalogue's failures leave alone: skipped hostile entries are counted, strict JSON,
stale export work folders reaped, the budget override judged, a runtime crash named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecompress.artifacts import strict_dumps
from edgecompress.bench.proc import Completed
from edgecompress.bench.runner import BenchRunError, parse_device_runner
from edgecompress.data import load_task
from edgecompress.export.worker import reap_work_folders
from edgecompress.profiles import load_profile
from edgecompress.runcheck import with_budget_overrides
from edgecompress.runconfig import RunConfig


@pytest.mark.parametrize("folder", ["fifo", "loop_file", "device_file", "broken_link"])
def test_hostile_entries_are_skipped_and_counted(ws: Path, folder: str) -> None:
    with pytest.warns(UserWarning, match=r"skipped 1 entry .*use --strict to fail instead"):
        task = load_task(ws / "data" / folder, progress=False)
    assert task.num_classes == 2
    assert any("skipped 1 entry" in n for n in task.notes)


def test_symlink_loop_class_folder_is_reported_not_silently_dropped(ws: Path) -> None:
    with pytest.warns(UserWarning, match=r"self \(a symlink loop\)"):
        task = load_task(ws / "data" / "loop_class", progress=False)
    assert task.num_classes == 2  # the two real classes; the loop is named in the notes


def test_strict_json_has_no_nan_or_infinity() -> None:
    text = strict_dumps({"a": float("inf"), "b": [float("nan"), 1.5], "c": (float("-inf"),)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [None]}
    assert "Infinity" not in text and "NaN" not in text


def test_stale_export_work_folders_are_reaped(tmp_path: Path) -> None:
    export = tmp_path / "export"
    (export / ".export-work-abc123" / "onnx2tf").mkdir(parents=True)
    (export / ".export-work-abc123" / "onnx2tf" / "big.tflite").write_bytes(b"\x00" * 1000)
    (export / "model_fp32.tflite").write_bytes(b"keep")
    assert [p.name for p in reap_work_folders(export)] == [".export-work-abc123"]
    assert sorted(p.name for p in export.iterdir()) == ["model_fp32.tflite"]


def test_budget_overrides_are_what_the_build_judges() -> None:
    profile = with_budget_overrides(load_profile("pixel7"), RunConfig(latency_ms=3.5, memory_mb=64.0))
    assert profile.budgets.latency_budget_ms == 3.5 and profile.budgets.peak_ram_budget_mb == 64.0
    assert profile.budgets.model_size_budget_mb == load_profile("pixel7").budgets.model_size_budget_mb


def test_runtime_crash_names_the_model_file_and_signal() -> None:
    done = Completed(("python", "device_runner.py", "/m/model.tflite"), -11, "", "", 0.2)
    with pytest.raises(BenchRunError, match=r"the model file /m/model.tflite crashed the runtime \(signal 11, SIGSEGV\)"):
        parse_device_runner(done, "device host (local localhost)", "/m/model.tflite")
