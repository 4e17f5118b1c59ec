"""Data sets by name: ``load_task("digits")``, ``"ucr:GunPoint"``, ``"mqar"``, ``"listops"``, ``"file:<path>"``.

The lowest layer: it reads and prepares data and knows nothing of models or search.
Loaders register on first use, so importing this package (as ``load_model`` does,
for :class:`InputSpec`) costs neither pandas nor scikit-learn.

>>> from nas.data import load_task
>>> task = load_task("digits", seed=0)
>>> task.input_spec.seq_len, task.input_spec.features, task.input_spec.num_outputs
(8, 8, 10)
"""

from nas.data.base import IGNORE_INDEX, Split, Task, TaskError
from nas.data.registry import DEFAULT_TASK, list_tasks, load_task, register_task, task_families
from nas.data.spec import InputSpec

__all__ = [
    "DEFAULT_TASK",
    "IGNORE_INDEX",
    "InputSpec",
    "Split",
    "Task",
    "TaskError",
    "list_tasks",
    "load_task",
    "register_task",
    "task_families",
]
