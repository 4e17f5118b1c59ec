from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import IGNORE_INDEX, TaskError, load_task
from nas.data.mqar import generate_mqar

from .helpers import assert_well_formed


def test_every_query_is_labelled_with_the_value_paired_with_its_key():
    vocab, pairs = 32, 6
    x, y = generate_mqar(200, vocab=vocab, seq_len=48, pairs=pairs, power_a=0.01, rng=np.random.default_rng(0))
    for row_x, row_y in zip(x, y):
        keys, values = row_x[0 : 2 * pairs : 2], row_x[1 : 2 * pairs : 2]
        assert (1 <= keys).all() and (keys < vocab // 2).all() and len(set(keys)) == pairs
        assert (vocab // 2 <= values).all() and (values < vocab).all() and len(set(values)) == pairs
        paired = dict(zip(keys.tolist(), values.tolist()))
        queries = np.flatnonzero(row_y != IGNORE_INDEX)
        assert len(queries) == pairs and queries.min() >= 2 * pairs
        assert sorted(row_x[queries].tolist()) == sorted(keys.tolist())  # each key queried once
        assert all(row_y[q] == paired[row_x[q]] for q in queries)
        assert ((queries - 2 * pairs) % 2 == 0).all()  # queries sit at even offsets, as in Zoology


def test_queries_favour_early_offsets_and_fillers_are_random_tokens():
    x, y = generate_mqar(500, vocab=64, seq_len=256, pairs=4, power_a=0.01, rng=np.random.default_rng(1))
    offsets = (np.argwhere(y != IGNORE_INDEX)[:, 1] - 8) // 2  # query slot within the remainder
    assert np.median(offsets) < (256 - 8) // 2 / 4  # power law, not uniform (uniform median ~ 62)
    filler = (y == IGNORE_INDEX)
    filler[:, :8] = False
    assert len(np.unique(x[filler])) == 64  # noise covers the whole vocabulary


def test_mqar_task_is_per_token_over_token_ids():
    task = load_task("mqar", seed=0, vocab=32, seq_len=40, pairs=5, n_train=30, n_val=10, n_test=20)
    assert_well_formed(task)
    spec = task.input_spec
    assert spec.per_token and spec.vocab == 32 and spec.num_outputs == 32 and spec.seq_len == 40
    assert [len(s) for s in task.splits().values()] == [30, 10, 20]
    assert task.train.y.shape == (30, 40) and task.train.mask is None
    assert int((task.test.y != IGNORE_INDEX).sum(1).min()) == 5
    assert not torch.equal(task.train.x[:10], task.val.x)  # splits come from separate streams


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(seq_len=30, pairs=8), r"seq_len=30 must be >= 4 \* pairs = 32"),
        (dict(vocab=16, pairs=8), r"pairs=8 needs that many distinct keys in 1..vocab/2-1; vocab=16 has 7"),
        (dict(n_val=0), r"n_train/n_val/n_test=\(2000, 0, 500\) must all be >= 1"),
    ],
)
def test_impossible_mqar_parameters_are_refused(params, message):
    with pytest.raises(TaskError, match=message):
        load_task("mqar", **params)
