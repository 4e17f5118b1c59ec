"""Cross-validation folds for small data: a validation split of a handful of samples picks noise, not models.

The pool is train + validation (everything but the test split, which no fold
ever sees). Folds are stratified by class for one-label-per-sample
classification, plain otherwise, and seeded.

>>> folds = cv_folds(task, k=5, seed=0)
>>> [len(fold.val) for fold in folds]
[8, 7, 7, 7, 7]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from nas.data.base import Split, Task, TaskError

CV_BELOW = 1000  # a task with fewer non-test samples than this is scored by k-fold cross-validation
DEFAULT_FOLDS = 5


def pool(task: Task) -> Split:
    """Train then validation, as one split: what cross-validation cuts and the final model trains on."""
    return merge_splits(task.train, task.val)


def merge_splits(a: Split, b: Split) -> Split:
    """One split holding ``a`` then ``b``; a missing mask or length means every step is real."""

    def full(split: Split, name: str) -> torch.Tensor:
        value = getattr(split, name)
        if value is not None:
            return value
        n, steps = split.x.shape[:2]
        return torch.ones(n, steps, dtype=torch.bool) if name == "mask" else torch.full((n,), steps)

    extra = {name: None if getattr(a, name) is None and getattr(b, name) is None
             else torch.cat([full(a, name), full(b, name)]) for name in ("mask", "lengths")}
    return Split(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), **extra)


def stratified(task: Task) -> bool:
    """Whether folds keep class shares: one class id per sample."""
    return task.metric == "accuracy" and task.train.y.ndim == 1


def check_folds(task: Task, k: int) -> None:
    """Refuse a fold count the task cannot give: below 2, above the pool, or above the smallest class."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise TaskError(f"folds={k!r} must be an integer >= 2 (one fold is no cross-validation)")
    n = len(task.train) + len(task.val)
    if k > n:
        raise TaskError(f"folds={k} is more than the {n} samples of {task.name}; allowed: 2..{n}")
    if stratified(task):
        counts = Counter(torch.cat([task.train.y, task.val.y]).tolist())
        label, smallest = min(counts.items(), key=lambda item: (item[1], item[0]))
        if k > smallest:
            name = task.classes[label] if task.classes else label
            raise TaskError(f"folds={k} is more than the {smallest} samples of class {name!r} in {task.name}; "
                            f"allowed: 2..{smallest}")


def cv_folds(task: Task, k: int = DEFAULT_FOLDS, seed: int = 0) -> list[Task]:
    """``k`` tasks, each training on k-1 folds of the pool and validating on the last; the test split is kept."""
    check_folds(task, k)
    data = pool(task)
    splitter = (StratifiedKFold if stratified(task) else KFold)(n_splits=k, shuffle=True, random_state=seed)
    labels = data.y.numpy() if stratified(task) else np.zeros(len(data))
    folds = []
    for train_idx, val_idx in splitter.split(np.zeros(len(data)), labels):
        folds.append(replace(task, train=_take(data, train_idx), val=_take(data, val_idx)))
    return folds


def _take(split: Split, idx: np.ndarray) -> Split:
    index = torch.as_tensor(idx, dtype=torch.long)
    return Split(*(None if t is None else t[index] for t in (split.x, split.y, split.mask, split.lengths)))


__all__ = ["CV_BELOW", "DEFAULT_FOLDS", "check_folds", "cv_folds", "merge_splits", "pool", "stratified"]
