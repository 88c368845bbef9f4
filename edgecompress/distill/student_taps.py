"""Where a student's embedding and early feature map are, on any classifier layout.

Students built here name them (``classifier``, ``low_level_layer``); a pruned copy of a user's
teacher does not, and its head can be ``head.2`` inside a Sequential after Flatten/Dropout, or a
1x1 conv. The embedding is the *input* of the classifier: ``student.classifier`` when it is an
``nn.Linear``, else the last ``nn.Linear`` registered, else the last 1x1 ``nn.Conv2d`` (a conv
head; its input map is pooled). The early feature map for Tang et al.'s alignment is
``student.low_level_layer``, else the output of the first ``nn.Conv2d``. ``student_feature``
(config) still names any module explicitly.
"""

from __future__ import annotations

from torch import nn


def classifier_name(student: nn.Module) -> str | None:
    """Name of the module whose input is the embedding, or None when there is none."""
    if isinstance(getattr(student, "classifier", None), nn.Linear):
        return "classifier"
    named = list(student.named_modules())
    linears = [n for n, m in named if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    heads = [n for n, m in named if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
    return heads[-1] if heads else None


def low_level_name(student: nn.Module) -> str | None:
    """Name of the early feature-map module for alignment, or None."""
    name = getattr(student, "low_level_layer", None)
    if isinstance(name, str):
        return name
    return next((n for n, m in student.named_modules() if isinstance(m, nn.Conv2d)), None)
