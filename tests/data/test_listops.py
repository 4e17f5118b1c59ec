from __future__ import annotations

import random

import pytest
import torch

from nas.data import TaskError, load_task
from nas.data.listops import evaluate as evaluate_listops
from nas.data import listops
from nas.data.listops import VOCAB, cache_path, generate_expression

from .helpers import assert_same_tensors, assert_well_formed

SMALL = dict(min_len=10, max_len=30, max_depth=4, max_args=4, n_train=60, n_val=20, n_test=20)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[SM 5 6 [MED 1 2 3 ] ]", 3),
        ("[MED 1 2 3 4 ]", 2),  # even count: mean 2.5 rounded down, as LRA's int(np.median)
        ("[SM 9 9 9 ]", 7),
        ("[MIN [MAX 1 8 ] [SM 3 4 ] 9 ]", 7),
        ("5", 5),
    ],
)
def test_hand_checked_expressions_evaluate_to_their_value(expression, value):
    assert evaluate_listops(expression) == value
    assert evaluate_listops(expression.split()) == value


@pytest.mark.parametrize("bad", ["[MAX 2 9", "[MAX ] 3", "]", "2 3", "[MAX 2 x ]", ""])
def test_malformed_expressions_are_refused(bad):
    with pytest.raises(TaskError, match="listops: "):
        evaluate_listops(bad)


def _depth_and_arity(tokens: list[str]) -> tuple[int, int, int]:
    depth = deepest = 0
    counts: list[int] = []
    low, high = 99, 0
    for token in tokens:
        if counts and token != "]":
            counts[-1] += 1
        if token.startswith("["):
            depth += 1
            deepest = max(deepest, depth)
            counts.append(0)
        elif token == "]":
            depth -= 1
            n = counts.pop()
            low, high = min(low, n), max(high, n)
    return deepest, low, high


def test_generated_trees_follow_the_depth_and_argument_limits():
    rng = random.Random(0)
    trees = [t for t in (generate_expression(rng, 4, 3, 200) for _ in range(300)) if t and len(t) > 1]
    assert trees
    for tokens in trees:
        deepest, low, high = _depth_and_arity(tokens)
        assert deepest <= 3 and 2 <= low and high <= 3  # leaves take the last level (depth 4)


def test_listops_task_labels_are_the_values_of_its_expressions(tmp_path):
    task = load_task("listops", seed=0, cache_dir=tmp_path, **SMALL)
    assert_well_formed(task)
    assert task.input_spec.vocab == len(VOCAB) and task.input_spec.seq_len == 30 and task.input_spec.num_outputs == 10
    seen = set()
    for split in task.splits().values():
        assert split.lengths.min() >= 10 and split.lengths.max() <= 30
        assert (split.x[~split.mask] == 0).all() and (split.x[split.mask] != 0).all()
        for ids, length, label in zip(split.x, split.lengths, split.y):
            tokens = [VOCAB[i] for i in ids[:length].tolist()]
            assert evaluate_listops(tokens) == int(label)
            seen.add(tuple(tokens))
    assert len(seen) == 100  # distinct across all three splits


def test_listops_is_cached_under_a_parameter_hash_and_reused(tmp_path, monkeypatch):
    first = load_task("listops", seed=0, cache_dir=tmp_path, **SMALL)
    path = cache_path(tmp_path, {**SMALL, "seed": 0})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert set(torch.load(path, weights_only=True)) >= {"train_tokens", "train_lengths", "train_y"}
    monkeypatch.setattr(listops, "_generate", lambda params: pytest.fail("cache was not used"))
    assert_same_tensors(load_task("listops", seed=0, cache_dir=tmp_path, **SMALL), first)
    assert cache_path(tmp_path, {**SMALL, "seed": 1}) != path
    assert cache_path(tmp_path, {**SMALL, "seed": 0, "max_len": 31}) != path


def test_a_corrupt_cache_file_is_regenerated(tmp_path):
    first = load_task("listops", seed=0, cache_dir=tmp_path, **SMALL)
    path = cache_path(tmp_path, {**SMALL, "seed": 0})
    path.write_bytes(b"not a torch file")
    assert_same_tensors(load_task("listops", seed=0, cache_dir=tmp_path, **SMALL), first)
    assert torch.load(path, weights_only=True)["train_y"].shape == (60,)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(min_len=40, max_len=30), r"max_len=30 must be >= min_len=40"),
        (dict(min_len=50, max_len=60, max_depth=2, max_args=3), r"min_len=50 is out of reach; .* at most 5 tokens"),
        (dict(min_len=2, max_len=3, n_train=5, n_val=1, n_test=1), r"found only 0 of 7 distinct expressions"),
    ],
)
def test_impossible_listops_parameters_are_refused(params, message, tmp_path):
    with pytest.raises(TaskError, match=message):
        load_task("listops", cache_dir=tmp_path, **params)
    assert not any(tmp_path.iterdir())  # nothing cached for a failed set
