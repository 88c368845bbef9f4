"""Every check that can fail on bad input runs here, before the first training step.

Each failure is one line naming the file / field / value and what is allowed.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from edgecompress.artifacts import StudentSpec
from edgecompress.distill.config import DistillConfig
from edgecompress.distill.loss_registry import needing
from edgecompress.distill.student_taps import classifier_name, low_level_name
from edgecompress.distill.teacher import Teacher, TeacherOutput
from edgecompress.errors import DistillError, TeacherError


def _shape(s: Any) -> str:
    return "x".join(str(int(v)) for v in s)


def check_inputs(teacher: Teacher, spec: StudentSpec, task: Any, cfg: DistillConfig) -> TeacherOutput | None:
    """Validate teacher, student spec, data and config against each other; return the
    teacher's output on a probe batch (None when the method needs no teacher)."""
    data_shape = tuple(task.input_shape)
    if tuple(spec.input_shape) != data_shape:
        raise DistillError(
            f"student spec input_shape {_shape(spec.input_shape)} disagrees with the data's {_shape(data_shape)}"
        )
    if spec.num_classes != task.num_classes:
        raise DistillError(f"student spec num_classes = {spec.num_classes} but the data has {task.num_classes} classes")
    weights = cfg.weights()
    if cfg.labels_used and (task.labeled is None or len(task.labeled) == 0):
        raise DistillError(f"method {cfg.method.value!r} needs labeled data, but the labeled split is empty")
    if cfg.unlabeled_used and cfg.labels_used and (task.unlabeled is None or len(task.unlabeled) == 0):
        raise DistillError(
            f"method {cfg.method.value!r} needs unlabeled data: give --unlabeled or a --labeled-fraction below 1"
        )

    out = None
    if teacher is not None:
        if cfg.teacher_feature is not None:
            teacher.set_taps(embedding=cfg.teacher_feature)
        out = teacher.probe(data_shape)  # raises on input-size mismatch
        real = _real_batch(task)
        if real is not None:  # real images: NaN/inf and a fast path that disagrees show up here, not mid-training
            teacher.verify(real)
            teacher(real, phase=f"forward failed on {len(real)} real labeled images")
        classes = int(out.logits.shape[-1]) if out.logits.dim() == 2 else -1
        if classes != task.num_classes:
            where = teacher.path or "teacher"
            raise TeacherError(f"{where}: teacher predicts {classes} classes but the data has {task.num_classes}")
        for name in needing(weights, "teacher_embedding"):
            if out.embedding is None:
                raise TeacherError(
                    f"{teacher.path}: method needs the teacher's embedding ({name}), which a {teacher.format} teacher does "
                    f"not expose; use .pt2, a state_dict, or methods supervised/kd/anc"
                )
    elif needing(weights, "teacher"):
        raise DistillError(f"method {cfg.method.value!r} needs a teacher (loss terms {', '.join(needing(weights, 'teacher'))})")
    return out


def _real_batch(task: Any, n: int = 32) -> torch.Tensor | None:
    split = getattr(task, "labeled", None)
    if split is None or len(split) == 0:
        split = getattr(task, "unlabeled", None)
    if split is None or len(split) == 0:
        return None
    return torch.stack([split[i][0] for i in range(min(n, len(split)))])


def check_student(student: nn.Module, cfg: DistillConfig, input_shape: tuple[int, ...]) -> None:
    """The student must follow the contract: ``classifier`` (Linear) and, for alignment, a real
    ``low_level_layer``; a named ``student_feature`` must exist."""
    names = [n for n, _ in student.named_modules() if n]
    if classifier_name(student) is None and cfg.student_feature is None:
        raise DistillError("student has no nn.Linear or 1x1-conv classifier; name its embedding module with student_feature")
    for label, name in (("student_feature", cfg.student_feature), ("low_level_layer", _low_level(student, cfg))):
        if name is not None and name not in names:
            near = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or names[:5]
            raise DistillError(f"student {label} {name!r} does not exist (nearest: {', '.join(near)})")
    with torch.no_grad():
        was = student.training
        student.eval()
        try:
            logits = student(torch.zeros(2, *input_shape))
        except Exception as exc:
            raise DistillError(f"student cannot run on input {_shape(input_shape)} ({str(exc).splitlines()[0][:200]})") from None
        finally:
            student.train(was)
    if logits.dim() != 2:
        raise DistillError(f"student returns logits of shape {tuple(logits.shape)}; expected (batch, classes)")


def _low_level(student: nn.Module, cfg: DistillConfig) -> str | None:
    if not needing(cfg.weights(), "low_level"):
        return None
    name = low_level_name(student)
    if name is None:
        raise DistillError("alignment needs an early feature map: the student has no Conv2d and no low_level_layer")
    return name
