"""Adversarial distillation: teacher loading, a loss registry, the resumable trainer, the demo teacher.

    from edgecompress.distill import DistillConfig, distill, load_teacher
    teacher = load_teacher("teacher.pt2")
    ckpt = distill(teacher, spec, task, DistillConfig(method="kd+unlabeled"), "runs/distill")

Methods (presets of loss weights, see :mod:`edgecompress.distill.config`): supervised, kd,
kd+unlabeled, fm, fitnet, anc, anc+unlabeled, anc+align, anc-labelfree. Importing this package imports torch.
"""

from edgecompress.distill.config import DiscRegularizer, DistillConfig, Method, Optimizer
from edgecompress.distill.demo_teacher import DemoTeacher, demo_teacher, demo_teacher_info, demo_teacher_module
from edgecompress.distill.losses import LOSSES, register_loss
from edgecompress.distill.teacher import Teacher, TeacherOutput
from edgecompress.distill.teacher_load import load_teacher
from edgecompress.distill.trainer import distill

__all__ = [
    "LOSSES",
    "DemoTeacher",
    "DiscRegularizer",
    "DistillConfig",
    "Method",
    "Optimizer",
    "Teacher",
    "TeacherOutput",
    "demo_teacher",
    "demo_teacher_info",
    "demo_teacher_module",
    "distill",
    "load_teacher",
    "register_loss",
]
