"""Shared tiny set-ups for the distillation tests (also imported by their subprocesses).

Real parts throughout: the built-in shapes generator through ``load_task`` (tiny sizes), the
registered ``test_resnet`` student, and a small untrained-or-briefly-trained DemoTeacher.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

TINY_DATA = "shapes:train=240,val=48,test=48"
TINY_POOL = "shapes-pool:n=240"
TEST_ARCH = "cn_r1_k3_s2_c8-rb_r1_k3_s1_c8-rb_r1_k3_s2_c16"


def tiny_task(fraction: float = 0.25, pool: bool = True) -> Any:
    from edgecompress.data import load_task

    return load_task(TINY_DATA, unlabeled=TINY_POOL if pool else None, labeled_fraction=fraction, seed=0, progress=False)


def tiny_spec(task: Any) -> Any:
    from edgecompress.artifacts import StudentSpec

    return StudentSpec(family="test_resnet", arch=TEST_ARCH, input_shape=tuple(task.input_shape), num_classes=task.num_classes)


def tiny_teacher(num_classes: int = 12, channels: int = 3, seed: int = 0) -> Any:
    """A small DemoTeacher with fixed random weights, as a loaded ModuleTeacher."""
    from edgecompress.distill.demo_teacher import DemoTeacher
    from edgecompress.distill.teacher import ModuleTeacher

    torch.manual_seed(seed)
    return ModuleTeacher(DemoTeacher(channels, num_classes, (8, 16, 24), stem_stride=2), None, "module")


def run_tiny(out: str, method: str = "anc+align", epochs: int = 3, resume: bool = False, **cfg: Any) -> Any:
    """One tiny distillation run (used in-process and by the SIGKILL / torchrun subprocesses)."""
    from edgecompress.distill import DistillConfig, distill

    torch.set_num_threads(1)
    task = tiny_task()
    config = DistillConfig(method=method, epochs=epochs, batch_size=16, lr=3e-3, **cfg)
    return distill(tiny_teacher(task.num_classes), tiny_spec(task), task, config, out, resume=resume, progress=False)


if __name__ == "__main__":  # subprocess entry: python tests/test_distill_helpers.py OUT METHOD EPOCHS [resume] [k=v ...]
    args = sys.argv[1:]
    extra = {k: int(v) for k, v in (a.split("=") for a in args[4:])}
    ck = run_tiny(args[0], args[1], int(args[2]), resume=len(args) > 3 and args[3] == "resume", **extra)
    Path(args[0], "done").write_text(ck.to_json())


def test_helpers_follow_the_contracts() -> None:
    task = tiny_task()
    assert len(task.labeled) == 60 and task.unlabeled is not None and len(task.unlabeled) == 180 + 240
    from edgecompress.students import create_student

    student = create_student(tiny_spec(task))
    assert isinstance(student.classifier, torch.nn.Linear)
    assert student.low_level_layer in dict(student.named_modules())
    assert student.forward_features(torch.zeros(2, *task.input_shape)).shape == (2, student.num_features)
