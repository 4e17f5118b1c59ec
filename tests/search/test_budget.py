"""The training budget scales with the data: small sets get more epochs, capped batches and cross-validation."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from nas.data import load_task
from nas.data.base import RECALL_PLATEAU_STEPS
from nas.data.mad import PROBES
from nas.search.budget import FLOOR_EPOCHS, MAX_EPOCHS, STEPS_PER_EPOCH, plan_budget
from nas.search.config import SearchConfig
from nas.search.study import make_pruner
from tests.data.test_folds import small_task


def test_digits_gets_the_floor_of_epochs_and_one_validation_split():
    task = load_task("digits", seed=0)
    budget = plan_budget(task, SearchConfig(), 256)
    assert (budget.epochs, budget.min_epochs, budget.folds) == (FLOOR_EPOCHS[1], 1, 0)
    assert budget.train_samples == len(task.train) and budget.batch(256) == 256


@pytest.mark.parametrize("n_train, epochs", [(3200, 24), (5000, 16), (10_000, 8), (20_000, 8)])
def test_a_larger_set_gets_fewer_passes_down_to_eight(n_train, epochs):
    task = load_task(f"mqar:n_train={n_train},n_val=10,n_test=10", seed=0)
    assert plan_budget(task, SearchConfig(), 256).epochs == epochs  # about 80,000 examples, in 8 to 24 passes


@pytest.mark.parametrize("largest_batch, first_rung", [(256, 24), (128, 16), (32, 4), (4096, 24)])
def test_a_recall_task_is_not_judged_before_its_largest_batch_took_the_plateaus_steps(largest_batch, first_rung):
    task = load_task("mqar:n_train=3200,n_val=10,n_test=10", seed=0)
    budget = plan_budget(task, SearchConfig(), largest_batch)  # not at 24 // 27: recall's plateau counts steps
    steps_an_epoch = math.ceil(3200 / budget.batch(largest_batch))  # 4096 is capped at 3200 / 4: 4 steps
    assert budget.min_epochs == min(budget.epochs, math.ceil(RECALL_PLATEAU_STEPS / steps_an_epoch)) == first_rung
    assert plan_budget(task, SearchConfig(max_epochs=4), largest_batch).min_epochs == min(4, first_rung)


@pytest.mark.parametrize("probe", PROBES)
def test_the_mad_recall_probes_wait_for_their_plateau_and_the_others_do_not(probe, tmp_path):
    small = "n_train=8,n_val=4,n_test=4" + (",vocab=8,seq_len=8" if probe == "memorization" else "")
    task = load_task(f"mad:{probe}:{small}", cache_dir=tmp_path)
    budget = plan_budget(task, SearchConfig(cv_below=0), 256)  # 8 sequences, batches of 2: 4 steps an epoch
    assert budget.min_epochs == (math.ceil(RECALL_PLATEAU_STEPS / 4) if probe.endswith("recall") else budget.epochs // 27)


@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_a_curve_flat_before_the_first_rung_is_not_pruned_and_one_flat_after_it_is(pruner):
    task = load_task("mqar:n_train=3200,n_val=10,n_test=10", seed=0)
    budget = plan_budget(task, SearchConfig(), 128)  # first rung 16 of 24: inside the budget
    assert budget.min_epochs < budget.epochs
    study = optuna.create_study(direction="maximize", pruner=make_pruner(pruner, budget))
    for _ in range(12):  # solvers: their curves rose before the first rung
        trial = study.ask()
        for epoch in range(1, budget.epochs + 1):
            trial.report(min(1.0, 0.1 * epoch), epoch)
            trial.should_prune()  # the pruner records each rung as it is asked
        study.tell(trial, 1.0)
    flat = study.ask()
    for epoch in range(1, budget.min_epochs):
        flat.report(0.1, epoch)
        assert not flat.should_prune(), f"pruned at epoch {epoch}, before the first rung ({budget.min_epochs})"
    flat.report(0.1, budget.min_epochs)
    assert flat.should_prune()


def test_a_small_set_is_cross_validated_with_more_epochs_and_smaller_batches():
    budget = plan_budget(small_task(), SearchConfig(min_examples=4000), 128)  # 25 pooled, 5 folds: 20 a fold
    assert budget.folds == 5 and budget.train_samples == 20
    assert budget.epochs == math.ceil(4000 / 20) and budget.min_epochs == budget.epochs // 27
    assert budget.batch(128) == 20 // STEPS_PER_EPOCH
    assert budget.epochs * math.ceil(20 / budget.batch(128)) >= 4000 / budget.batch(128)  # steps follow the data


def test_epochs_stop_at_the_ceiling():
    assert plan_budget(small_task(), SearchConfig(), 128).epochs == MAX_EPOCHS  # 25,000 examples / 20 > 1,000


def test_the_users_word_is_final():
    assert plan_budget(small_task(), SearchConfig(max_epochs=3), 128).epochs == 3
    assert plan_budget(small_task(), SearchConfig(cv_below=0), 128).folds == 0
    assert plan_budget(small_task(), SearchConfig(folds=3), 128).folds == 3


def test_a_validation_split_the_user_gave_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {name: rng.normal(size=(n, 8, 1)) for name, n in (("X_train", 30), ("X_val", 10), ("X_test", 10))}
    arrays.update({f"y{name[1:]}": rng.integers(0, 2, len(x)) for name, x in list(arrays.items())})
    np.savez(tmp_path / "d.npz", **arrays)
    task = load_task(f"file:{tmp_path / 'd.npz'}")
    assert task.val_given and plan_budget(task, SearchConfig(), 256).folds == 0


@pytest.mark.parametrize("change, message", [
    ({"folds": 1}, r"folds=1 must be an integer >= 2 \(one fold is no cross-validation"),
    ({"min_examples": 0}, "min_examples=0 must be an integer >= 1"),
    ({"cv_below": -1}, "cv_below=-1 must be an integer >= 0"),
])
def test_bad_budget_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**change)
