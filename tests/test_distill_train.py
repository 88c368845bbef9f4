"""The training loop on real tiny parts: every method, outputs, and bad input before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgecompress.artifacts import Checkpoint, sha256_file
from edgecompress.distill import DistillConfig, distill
from edgecompress.distill.config import Method
from edgecompress.distill.teacher import ModuleTeacher
from edgecompress.errors import DistillError, EdgeCompressError, TeacherError
from tests.test_distill_helpers import run_tiny, tiny_spec, tiny_task, tiny_teacher

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return tiny_task()


@pytest.mark.parametrize("method", [m.value for m in Method])
def test_every_method_trains_and_writes_a_checkpoint(tmp_path: Path, task, method: str) -> None:  # type: ignore[no-untyped-def]
    cfg = DistillConfig(method=method, epochs=2, batch_size=16, steps_per_epoch=4)
    ck = distill(tiny_teacher(task.num_classes), tiny_spec(task), task, cfg, tmp_path, progress=False)
    loaded = Checkpoint.load(tmp_path / "checkpoint.json")
    assert loaded == ck
    assert ck.sha256 == sha256_file(tmp_path / ck.weights)
    assert ck.preprocessing == task.preprocessing and ck.data == task.data_ref
    for key in ("val_acc", "test_acc", "val_agreement", "test_agreement", "teacher_test_acc"):
        assert 0.0 <= ck.metrics[key] <= 1.0
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert set(lines[0]["loss"]) == set(cfg.weights())
    assert all(v == v for v in lines[-1]["loss"].values())  # finite, not NaN
    # the saved weights are a weights_only state_dict of the student
    sd = torch.load(tmp_path / ck.weights, weights_only=True)
    assert any(k.startswith("classifier") for k in sd)


def test_anc_student_learns_the_teacher(tmp_path: Path, task) -> None:  # type: ignore[no-untyped-def]
    """Agreement with the teacher must rise well above chance (1/12) after a few epochs."""
    cfg = DistillConfig(method="anc-labelfree", epochs=4, batch_size=32, lr=5e-3)
    ck = distill(tiny_teacher(task.num_classes), tiny_spec(task), task, cfg, tmp_path, progress=False)
    assert ck.metrics["test_agreement"] > 0.3, ck.metrics


def test_nan_teacher_is_named_not_blamed_on_the_loss(tmp_path: Path, task) -> None:  # type: ignore[no-untyped-def]
    class NanTeacher(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny_teacher(task.num_classes).module
            self.classifier = self.inner.classifier

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x)
            return out if x.abs().sum() == 0 else out * float("nan")  # fine on the zero probe only

    teacher = ModuleTeacher(NanTeacher(), None, "module")
    # A teacher that turns NaN mid-training is named, not reported as the student's loss.
    with pytest.raises(TeacherError, match=r"teacher \(module\): the teacher's logits contain NaN or inf \(on a \d+x3x32x32 batch\)"):
        distill(teacher, tiny_spec(task), task, DistillConfig(method="kd", epochs=1, batch_size=16), tmp_path, progress=False)


def _no_training(out: Path) -> None:
    assert not (out / "train_state.pt").exists() and not (out / "metrics.jsonl").exists()


def test_bad_inputs_fail_before_training(tmp_path: Path, task) -> None:  # type: ignore[no-untyped-def]
    spec = tiny_spec(task)
    cfg = DistillConfig(method="anc+align", epochs=1, batch_size=16)
    cases = [
        (tiny_teacher(10), spec, task, cfg, TeacherError, "teacher predicts 10 classes but the data has 12"),
        (tiny_teacher(12, channels=1), spec, task, cfg, TeacherError, "cannot run on the data's input size 3x32x32"),
        (tiny_teacher(12), spec.__class__(**{**spec.__dict__, "input_shape": (3, 16, 16)}), task, cfg,
         DistillError, "student spec input_shape 3x16x16 disagrees with the data's 3x32x32"),
        (tiny_teacher(12), spec, task, cfg.replace(teacher_feature="stages.9"), TeacherError,
         r"feature tap 'stages.9' does not exist \(nearest: "),
        (tiny_teacher(12), spec, task, cfg.replace(student_feature="bogus"), DistillError, "student_feature 'bogus' does not exist"),
        (tiny_teacher(12), spec, tiny_task(pool=False, fraction=1.0), cfg, DistillError, "needs unlabeled data"),
    ]
    for teacher, sp, tk, c, err, msg in cases:
        with pytest.raises(err, match=msg) as info:
            distill(teacher, sp, tk, c, tmp_path, progress=False)
        assert isinstance(info.value, EdgeCompressError) and "\n" not in str(info.value)
        _no_training(tmp_path)


def test_resume_of_a_finished_run_is_a_no_op(tmp_path: Path) -> None:
    first = run_tiny(str(tmp_path), "kd", epochs=1, steps_per_epoch=3)
    again = run_tiny(str(tmp_path), "kd", epochs=1, resume=True, steps_per_epoch=3)
    assert {k: v for k, v in again.metrics.items() if k != "train_s"} == {
        k: v for k, v in first.metrics.items() if k != "train_s"
    }
    with pytest.raises(DistillError, match="written by a different config"):
        run_tiny(str(tmp_path), "kd", epochs=1, resume=True, steps_per_epoch=2)


def test_anc_with_equal_widths_needs_no_adapter(tmp_path: Path, task) -> None:  # type: ignore[no-untyped-def]
    """Student embedding as wide as the teacher's: no adapter, so the discriminator step must
    detach the student embedding itself (regression: it backpropagated into a freed graph)."""
    from edgecompress.artifacts import StudentSpec

    teacher = tiny_teacher(task.num_classes)
    spec = StudentSpec(family="pruned-teacher", arch="keep1", input_shape=tuple(task.input_shape), num_classes=task.num_classes)
    cfg = DistillConfig(method="anc+align", epochs=1, batch_size=16, steps_per_epoch=3)
    ck = distill(teacher, spec, task, cfg, tmp_path, progress=False)
    assert 0.0 <= ck.metrics["val_acc"] <= 1.0
