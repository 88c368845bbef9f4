"""Data: built-in tasks (``digits``, ``shapes`` + ``shapes-pool``), user folders / arrays /
CIFAR batches, seeded stratified splits and torch transforms.

    from edgecompress.data import load_task
    task = load_task("shapes", unlabeled="shapes-pool", labeled_fraction=0.1, seed=0)
    x, y = task.labeled[0]          # float32 (3, 32, 32) normalized, int64 label

Importing this package imports torch; the CLI imports it lazily.
"""

from edgecompress.data.builtin import BUILTIN, BUILTIN_POOLS
from edgecompress.data.datasets import SplitDataset
from edgecompress.data.raw import DataWarning
from edgecompress.data.task import TaskData, load_task, load_task_ref
from edgecompress.data.transforms import Augment, Pipeline

__all__ = [
    "BUILTIN",
    "BUILTIN_POOLS",
    "Augment",
    "DataWarning",
    "Pipeline",
    "SplitDataset",
    "TaskData",
    "load_task",
    "load_task_ref",
]
