"""Data sets by name: ``load_task("digits")``, ``"ucr:GunPoint"``, ``"mqar"``, ``"listops"``, ``"file:<path>"``.

>>> from nas.tasks import load_task
>>> task = load_task("digits", seed=0)
>>> task.input_spec.seq_len, task.input_spec.features, task.input_spec.num_outputs
(8, 8, 10)
"""

from nas.tasks.base import IGNORE_INDEX, Split, Task, TaskError
from nas.tasks.registry import DEFAULT_TASK, list_tasks, load_task, register_task, task_families

# Importing a loader registers it.
from nas.tasks import digits, files, listops, mqar, ucr  # noqa: E402,F401
from nas.tasks.listops import evaluate as evaluate_listops  # noqa: E402

__all__ = [
    "DEFAULT_TASK",
    "IGNORE_INDEX",
    "Split",
    "Task",
    "TaskError",
    "evaluate_listops",
    "list_tasks",
    "load_task",
    "register_task",
    "task_families",
]
