"""Budget-driven selection: criterion, budgets, infeasible budgets, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.artifacts import StudentSpec
from edgecompress.cli.main import cli
from edgecompress.errors import SelectError
from edgecompress.profiles import builtin_profiles_dir, load_profile_file
from edgecompress.runtimes import get_runtime
from edgecompress.select import run_selection, select_student
from edgecompress.students import create_student


@pytest.fixture()
def pixel7(tmp_path: Path):  # a copy, so no calibration file beside the built-in one is picked up
    dst = tmp_path / "pixel7.toml"
    shutil.copy(builtin_profiles_dir() / "pixel7.toml", dst)
    return load_profile_file(dst)


def test_selects_within_budget_and_fills_cost(pixel7) -> None:
    spec = select_student(pixel7, (3, 32, 32), 10)
    assert spec.cost is not None and spec.cost.predicted_latency_ms is not None
    assert spec.cost.predicted_latency_ms <= pixel7.budgets.latency_budget_ms
    assert spec.cost.size_bytes[spec.cost.precision] <= pixel7.budgets.model_size_budget_mb * 1024 * 1024
    assert spec.family == "mobilenet"  # first family in the default preference order
    assert spec.selection is not None and spec.selection.latency_source.startswith("priors; budget checked on the point prediction")
    assert spec.selection.latency_upper_ms is None
    again = StudentSpec.from_json(spec.to_json())
    assert again == spec
    model = create_student(again)
    assert model.classifier.out_features == 10


def test_criterion_is_max_macs_within_family(pixel7) -> None:
    sel = run_selection(pixel7, (3, 32, 32), 10)
    fitting = [c for c in sel.candidates if c.fits and c.spec.family == sel.choice.spec.family]
    assert sel.choice.cost.macs == max(c.cost.macs for c in fitting)
    assert any(not c.fits for c in sel.candidates)  # the budget binds: some candidates are rejected
    # A tighter budget never picks a bigger model, and the pick still fits.
    tight = run_selection(pixel7, (3, 32, 32), 10, latency_ms=pixel7.budgets.latency_budget_ms / 4)
    assert tight.choice.cost.macs < sel.choice.cost.macs
    assert tight.choice.latency_ms <= pixel7.budgets.latency_budget_ms / 4


def test_memory_and_size_budgets_bind(pixel7) -> None:
    sel = run_selection(pixel7, (3, 32, 32), 10, latency_ms=1e3, size_mb=0.1)
    assert sel.choice.size_mb <= 0.1
    assert all("size" in c.over for c in sel.candidates if c.size_mb > 0.1)
    # 0.6 MB over the runtime's fixed overhead: weights and activations must fit in that
    budget = get_runtime(pixel7.runtime.kind).ram_overhead_mb + 0.6
    ram = run_selection(pixel7, (3, 32, 32), 10, latency_ms=1e3, memory_mb=budget)
    assert ram.choice.ram_mb <= budget
    assert any("ram" in c.over for c in ram.candidates)


def test_family_preference_order(pixel7) -> None:
    sel = run_selection(pixel7, (3, 32, 32), 10, families=["resnet", "mobilenet"])
    assert sel.choice.spec.family == "resnet"


def test_infeasible_budget_names_smallest_candidate(pixel7) -> None:
    with pytest.raises(SelectError) as info:
        select_student(pixel7, (3, 32, 32), 10, latency_ms=0.001)
    msg = str(info.value)
    assert "no candidate fits" in msg and "smallest" in msg and "budget 0.001 ms" in msg
    assert "\n" not in msg


def test_bad_task_inputs(pixel7) -> None:
    with pytest.raises(SelectError, match="classes"):
        select_student(pixel7, (3, 32, 32), 1)
    with pytest.raises(SelectError, match=">= 8"):
        select_student(pixel7, (3, 4, 4), 10)
    with pytest.raises(SelectError, match="unknown"):
        select_student(pixel7, (3, 32, 32), 10, families=["nope"])
    with pytest.raises(SelectError, match="needs a teacher"):
        select_student(pixel7, (3, 32, 32), 10, families=["pruned-teacher"])


def test_pruned_teacher_preferred_when_teacher_given(pixel7) -> None:
    from tests.test_students import ResNetLike

    teacher = ResNetLike().eval()
    spec = select_student(pixel7, (3, 16, 16), 10, teacher=teacher)
    assert spec.family == "pruned-teacher"
    model = create_student(StudentSpec.from_json(spec.to_json()), teacher)
    assert sum(p.numel() for p in model.parameters()) == spec.cost.params


def test_cli_select_table_json_and_output(tmp_path: Path, pixel7) -> None:
    out = tmp_path / "spec.json"
    res = CliRunner().invoke(cli, ["select", "--device", pixel7.source, "--input", "3x32x32", "--classes", "10", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "chosen: mobilenet" in res.output and "fits" in res.output
    spec = StudentSpec.load(out)
    assert spec.num_classes == 10
    res = CliRunner().invoke(cli, ["select", "--device", pixel7.source, "--classes", "10", "--json"])
    data = json.loads(res.output)
    assert data["choice"]["family"] == "mobilenet" and len(data["candidates"]) > 50


def test_cli_select_infeasible_exits_2_one_line(pixel7) -> None:
    res = CliRunner().invoke(cli, ["select", "--device", pixel7.source, "--classes", "10", "--latency-ms", "0.001"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no candidate fits")
    res = CliRunner().invoke(cli, ["select", "--device", pixel7.source, "--classes", "10", "--input", "3x32"])
    assert res.exit_code == 2 and "CxHxW" in res.output
