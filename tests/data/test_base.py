from __future__ import annotations

import pytest
import torch

from nas.data import Split, Task, TaskError, load_task


def test_split_refuses_tensors_of_different_sample_counts():
    with pytest.raises(TaskError, match="Split.y has 3 samples but x has 4"):
        Split(torch.zeros(4, 2, 1), torch.zeros(3, dtype=torch.int64))
    assert len(Split(torch.zeros(4, 2, 1), torch.zeros(4, dtype=torch.int64))) == 4


def test_task_to_moves_every_split_and_keeps_the_rest():
    task = load_task("ucr:JapaneseVowels")
    moved = task.to("meta")
    assert isinstance(moved, Task) and moved.name == task.name and moved.classes == task.classes
    for split in moved.splits().values():
        assert {t.device.type for t in (split.x, split.y, split.mask, split.lengths)} == {"meta"}
    assert task.train.x.device.type == "cpu"  # the original is untouched
    assert torch.equal(task.to("cpu").val.mask, task.val.mask)
