"""Cross-validation folds: stratified, seeded, a partition of train + validation, and blind to the test split."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nas.data import Split, Task, TaskError
from nas.data.folds import check_folds, cv_folds, pool
from nas.data.spec import InputSpec


def small_task(counts=(12, 8, 5), seed: int = 0) -> Task:
    """Every sample unique (its row index is its first value), classes in the given counts, 4 test samples."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    x = torch.arange(len(y), dtype=torch.float32)[:, None, None].expand(-1, 5, 1).contiguous()
    cut = len(y) * 4 // 5
    test = Split(-1 - torch.arange(4, dtype=torch.float32)[:, None, None].expand(-1, 5, 1).contiguous(),
                 torch.tensor([0, 1, 2, 0]))
    spec = InputSpec(seq_len=5, features=1, num_outputs=len(counts))
    return Task("small", Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:]), test, spec, "accuracy",
                tuple("abc"[:len(counts)]), 0)


def ids(split: Split) -> list[int]:
    return [int(v) for v in split.x[:, 0, 0]]


def test_folds_partition_the_pool_and_keep_the_test_split():
    task = small_task()
    folds = cv_folds(task, k=5, seed=0)
    vals = [ids(f.val) for f in folds]
    assert sorted(sum(vals, [])) == list(range(25))  # every pooled sample validates exactly once
    for fold in folds:
        assert not set(ids(fold.train)) & set(ids(fold.val))
        assert sorted(ids(fold.train) + ids(fold.val)) == list(range(25))
        assert fold.test is task.test
        assert min(ids(fold.train) + ids(fold.val)) >= 0  # test rows are negative: none leaked into a fold


def test_folds_are_stratified():
    task = small_task()
    labels = pool(task).y
    for fold in cv_folds(task, k=5, seed=0):
        got = Counter(fold.val.y.tolist())
        for c, n in Counter(labels.tolist()).items():
            assert abs(got[c] - n / 5) < 1, (c, got)


def test_folds_are_seeded():
    task = small_task()
    first, again, other = (cv_folds(task, 5, seed=s) for s in (0, 0, 1))
    assert [ids(f.val) for f in first] == [ids(f.val) for f in again]
    assert [ids(f.val) for f in first] != [ids(f.val) for f in other]


def test_pool_fills_masks_where_one_split_has_none():
    task = small_task()
    mask = torch.ones(len(task.val), 5, dtype=torch.bool)
    mask[:, -1] = False
    task = Task(task.name, task.train, Split(task.val.x, task.val.y, mask, torch.full((len(task.val),), 4)),
                task.test, task.input_spec, task.metric, task.classes, 0)
    merged = pool(task)
    assert merged.mask.shape == (25, 5) and merged.mask[:20].all() and not merged.mask[20:, -1].any()
    assert merged.lengths.tolist() == [5] * 20 + [4] * 5


@pytest.mark.parametrize("k, message", [
    (1, "folds=1 must be an integer >= 2"),
    (6, "folds=6 is more than the 5 samples of class 'c' in small; allowed: 2..5"),
])
def test_a_fold_count_the_data_cannot_give_is_refused(k, message):
    with pytest.raises(TaskError, match=message):
        check_folds(small_task(), k)
