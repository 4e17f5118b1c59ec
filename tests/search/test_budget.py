"""The training budget scales with the data: small sets get more epochs, capped batches and cross-validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.data import load_task
from nas.search.budget import FLOOR_EPOCHS, STEPS_PER_EPOCH, plan_budget
from nas.search.config import SearchConfig
from tests.data.test_folds import small_task


def test_digits_gets_the_floor_of_epochs_and_one_validation_split():
    task = load_task("digits", seed=0)
    budget = plan_budget(task, SearchConfig())
    assert (budget.epochs, budget.min_epochs, budget.folds) == (FLOOR_EPOCHS[1], 1, 0)
    assert budget.train_samples == len(task.train) and budget.batch(256) == 256


@pytest.mark.parametrize("n_train, epochs", [(3200, 24), (5000, 16), (10_000, 8), (20_000, 8)])
def test_a_larger_set_gets_fewer_passes_down_to_eight(n_train, epochs):
    task = load_task(f"mqar:n_train={n_train},n_val=10,n_test=10", seed=0)
    assert plan_budget(task, SearchConfig()).epochs == epochs  # about 80,000 examples, in 8 to 24 passes


def test_a_small_set_is_cross_validated_with_more_epochs_and_smaller_batches():
    budget = plan_budget(small_task(), SearchConfig())  # 25 pooled samples, 5 folds: 20 train a fold
    assert budget.folds == 5 and budget.train_samples == 20
    assert budget.epochs == math.ceil(4000 / 20) and budget.min_epochs == budget.epochs // 27
    assert budget.batch(128) == 20 // STEPS_PER_EPOCH
    assert budget.epochs * math.ceil(20 / budget.batch(128)) >= 4000 / budget.batch(128)  # steps follow the data


def test_the_users_word_is_final():
    assert plan_budget(small_task(), SearchConfig(max_epochs=3)).epochs == 3
    assert plan_budget(small_task(), SearchConfig(cv_below=0)).folds == 0
    assert plan_budget(small_task(), SearchConfig(folds=3)).folds == 3


def test_a_validation_split_the_user_gave_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {name: rng.normal(size=(n, 8, 1)) for name, n in (("X_train", 30), ("X_val", 10), ("X_test", 10))}
    arrays.update({f"y{name[1:]}": rng.integers(0, 2, len(x)) for name, x in list(arrays.items())})
    np.savez(tmp_path / "d.npz", **arrays)
    task = load_task(f"file:{tmp_path / 'd.npz'}")
    assert task.val_given and plan_budget(task, SearchConfig()).folds == 0


@pytest.mark.parametrize("change, message", [
    ({"folds": 1}, r"folds=1 must be an integer >= 2 \(one fold is no cross-validation"),
    ({"min_examples": 0}, "min_examples=0 must be an integer >= 1"),
    ({"cv_below": -1}, "cv_below=-1 must be an integer >= 0"),
])
def test_bad_budget_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**change)
