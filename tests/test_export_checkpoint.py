"""`export(checkpoint)` and `edgecompress export`: student from spec + weights, data from DataRef."""

from __future__ import annotations

import dataclasses
import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgecompress.artifacts import Checkpoint, ExportArtifact, StudentSpec, sha256_file
from edgecompress.cli.main import cli
from edgecompress.errors import ExportError
from edgecompress.export import ExportConfig, export
from edgecompress.students.families import TEST_MOBILENET

torch.set_num_threads(1)
ONNX_FP32 = ExportConfig(formats=("onnx",), precisions=("fp32",), parity_samples=64, calibration_size=32)


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as `distill` writes it: weights file beside checkpoint.json, built-in data."""
    from edgecompress.data import load_task
    from edgecompress.students import create_student

    task = load_task("digits", progress=False)
    spec = StudentSpec(family="test_mobilenet", arch=TEST_MOBILENET, input_shape=task.input_shape, num_classes=task.num_classes)
    torch.manual_seed(0)
    model = create_student(spec)
    folder = tmp_path_factory.mktemp("ckpt")
    torch.save(model.state_dict(), folder / "student.pt")
    ckpt = Checkpoint(weights="student.pt", sha256=sha256_file(folder / "student.pt"), spec=spec,
                      preprocessing=task.preprocessing, data=task.data_ref)
    return ckpt.save(folder / "checkpoint.json")


def _variant(src: Path, dst: Path, **changes: object) -> Path:
    ckpt = Checkpoint.load(src)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "student.pt").write_bytes((src.parent / "student.pt").read_bytes())
    return dataclasses.replace(ckpt, **changes).save(dst / "checkpoint.json")


def test_export_from_checkpoint_path(digits_ckpt: Path, tmp_path: Path) -> None:
    (art,) = export(digits_ckpt, ONNX_FP32, tmp_path, progress=False)
    assert art.parity.passed and art.parity.n_samples == 64
    assert art.input.shape == (1, 1, 16, 16) and art.input.preprocessing == Checkpoint.load(digits_ckpt).preprocessing
    assert art.checkpoint_sha256 == Checkpoint.load(digits_ckpt).sha256


def test_cli_export_qat_builds_int8_from_the_fine_tune(digits_ckpt: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["export", "--checkpoint", str(digits_ckpt), "--format", "onnx", "--precision", "int8",
                                   "--out", str(tmp_path), "--parity-samples", "64", "--calibration-size", "32", "--qat",
                                   "--keep-failing", "--json"])
    assert res.exit_code == 0, res.output
    (art,) = [ExportArtifact.from_dict(d) for d in json.loads(res.stdout)]
    assert [a.step for a in art.attempts] == ["qat"] and art.quant_settings["qat_steps"] == 60
    assert art.quant_settings["qat_parity_images"] == 64 and "qat_model_agreement" in art.quant_settings


def test_cli_export_json(digits_ckpt: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["export", "--checkpoint", str(digits_ckpt), "--format", "onnx", "--precision", "fp32,fp16",
                                   "--out", str(tmp_path), "--parity-samples", "64", "--calibration-size", "32", "--json"])
    assert res.exit_code == 0, res.output
    arts = [ExportArtifact.from_dict(d) for d in json.loads(res.stdout)]
    assert [a.precision for a in arts] == ["fp32", "fp16"]
    assert all(Path(a.path + ".json").is_file() for a in arts)


def test_cli_rejects_bad_precision_in_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["export", "--checkpoint", str(digits_ckpt), "--precision", "fp32,int4", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip() == (
        "error: export config: --precision value 'int4' is not allowed (allowed: fp32, fp16, int8, dynamic-int8, full-int8)"
    )


def test_spec_that_does_not_match_weights_is_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    ckpt = Checkpoint.load(digits_ckpt)
    wrong = _variant(digits_ckpt, tmp_path / "c", spec=dataclasses.replace(ckpt.spec, width_mult=2.0))
    with pytest.raises(ExportError, match=r"weights student.pt do not match spec test_mobilenet/.*of another shape \(e\.g\. "):
        export(wrong, ONNX_FP32, tmp_path / "out")
    res = CliRunner().invoke(cli, ["export", "--checkpoint", str(wrong), "--format", "onnx", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "do not match spec" in res.output
    assert not (tmp_path / "out").exists()


def test_changed_weights_file_is_refused(digits_ckpt: Path, tmp_path: Path) -> None:
    ckpt_path = _variant(digits_ckpt, tmp_path / "c")
    state = torch.load(ckpt_path.parent / "student.pt", weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, ckpt_path.parent / "student.pt")
    with pytest.raises(ExportError, match="sha256 differs"):
        export(ckpt_path, ONNX_FP32, tmp_path / "out")


def test_pickled_module_is_not_loaded(digits_ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "student.pt").write_bytes(pickle.dumps(torch.nn.Linear(2, 2)))
    ckpt = dataclasses.replace(Checkpoint.load(digits_ckpt), sha256="")
    path = ckpt.save(folder / "checkpoint.json")
    with pytest.raises(ExportError, match="not a weights-only state_dict"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch notes the pickle protocol before refusing
        export(path, ONNX_FP32, tmp_path / "out")


def test_checkpoint_without_data_or_teacher(digits_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="has no data reference"):
        export(_variant(digits_ckpt, tmp_path / "a", data=None), ONNX_FP32, tmp_path / "out")
    ckpt = Checkpoint.load(digits_ckpt)
    pruned = _variant(digits_ckpt, tmp_path / "b", spec=dataclasses.replace(ckpt.spec, family="pruned-teacher", arch="keep0.5"))
    with pytest.raises(ExportError, match=r"'pruned-teacher' is built from the teacher; pass teacher= \(CLI: --teacher PATH\)"):
        export(pruned, ONNX_FP32, tmp_path / "out")
