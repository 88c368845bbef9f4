"""Student families: registry, blocks, arch strings and structured pruning of the teacher.

    create_student(spec, teacher=None) -> nn.Module
    list_students() -> list[str]
    @register_student("name", search_space=...)

Importing this package does not import torch; building a student does.
"""

from edgecompress.students.registry import StudentFamily, create_student, get_family, list_students, register_student

__all__ = ["StudentFamily", "create_student", "get_family", "list_students", "register_student"]
