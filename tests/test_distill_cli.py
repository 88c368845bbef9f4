"""`edgecompress distill` end to end through click, and its one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgecompress.artifacts import Checkpoint, StudentSpec
from edgecompress.cli.main import cli
from edgecompress.distill.demo_teacher import DemoTeacher, export_teacher
from tests.test_distill_helpers import TEST_ARCH, TINY_DATA, TINY_POOL

torch.set_num_threads(1)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    (tmp_path / "teacher.pt2").write_bytes(export_teacher(DemoTeacher(3, 12, (8, 16, 24), stem_stride=2), (3, 32, 32)))
    (tmp_path / "teacher10.pt2").write_bytes(export_teacher(DemoTeacher(3, 10, (8, 16, 24), stem_stride=2), (3, 32, 32)))
    StudentSpec(family="test_resnet", arch=TEST_ARCH, input_shape=(3, 32, 32), num_classes=12).save(tmp_path / "spec.json")
    (tmp_path / "cfg.json").write_text(json.dumps({"batch_size": 16, "steps_per_epoch": 3}))
    return {"teacher": tmp_path / "teacher.pt2", "teacher10": tmp_path / "teacher10.pt2", "spec": tmp_path / "spec.json",
            "cfg": tmp_path / "cfg.json", "out": tmp_path / "out"}


def _args(f: dict[str, Path], **over: str) -> list[str]:
    opts = {"--teacher": str(f["teacher"]), "--spec": str(f["spec"]), "--data": TINY_DATA, "--unlabeled": TINY_POOL,
            "--labeled-fraction": "0.25", "--method": "anc+align", "--epochs": "1", "--config": str(f["cfg"]),
            "--out": str(f["out"])}
    opts.update(over)
    return ["distill", *[x for kv in opts.items() for x in kv], "--no-progress"]


def test_cli_writes_a_checkpoint(files: dict[str, Path]) -> None:
    res = CliRunner().invoke(cli, [*_args(files), "--json"])
    assert res.exit_code == 0, res.output
    ck = Checkpoint.from_json(res.output)
    assert ck == Checkpoint.load(files["out"] / "checkpoint.json")
    assert ck.distill_config["method"] == "anc+align" and ck.distill_config["batch_size"] == 16
    res = CliRunner().invoke(cli, [*_args(files), "--resume"])
    assert res.exit_code == 0 and "test accuracy" in res.output


def _one_line_error(files: dict[str, Path], message: str, **over: str) -> None:
    res = CliRunner().invoke(cli, _args(files, **over))
    assert res.exit_code == 2, res.output
    lines = [s for s in res.output.strip().splitlines() if s]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert not (files["out"] / "train_state.pt").exists()


def test_cli_bad_inputs(files: dict[str, Path], tmp_path: Path) -> None:
    _one_line_error(files, "teacher file not found", **{"--teacher": str(tmp_path / "nope.pt2")})
    (tmp_path / "junk.pt2").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    _one_line_error(files, "corrupt", **{"--teacher": str(tmp_path / "junk.pt2")})
    _one_line_error(files, "teacher predicts 10 classes but the data has 12", **{"--teacher": str(files["teacher10"])})
    (tmp_path / "bad.json").write_text(json.dumps({"batch_sise": 8}))
    _one_line_error(files, "unknown key 'batch_sise'", **{"--config": str(tmp_path / "bad.json")})
    (tmp_path / "tap.json").write_text(json.dumps({"teacher_feature": "stages.0.conv"}))
    _one_line_error(files, "feature tap 'stages.0.conv' does not exist (nearest: stages.", **{"--config": str(tmp_path / "tap.json")})
    StudentSpec(family="test_resnet", arch=TEST_ARCH, input_shape=(3, 24, 24), num_classes=12).save(tmp_path / "s24.json")
    _one_line_error(files, "input_shape 3x24x24 disagrees with the data's 3x32x32", **{"--spec": str(tmp_path / "s24.json")})
