"""k-fold training in step: the mean curve is the mean of the folds, pruning sees it, and steps are counted."""

from __future__ import annotations

import math

import pytest
import torch

from nas.data.folds import cv_folds
from nas.models.model import build_model
from nas.training import cross_validation, trainer as trainer_module
from nas.training.cross_validation import fit_folds, last_within_noise, smoothing_window
from nas.training.trainer import TrainConfig, Trainer
from tests.training.test_trainer import SPEC, task, tick

CONFIG = TrainConfig(max_epochs=4, batch_size=32, lr=3e-3, seed=1)


def folds():
    return [Trainer(fold, "cpu") for fold in cv_folds(task(n=96), k=3, seed=0)]


def make():
    return build_model(SPEC, task().input_spec, seed=7)  # no dropout: each fold's run is fully determined


def test_the_curve_is_the_mean_of_each_fold_trained_alone():
    result = fit_folds(folds(), make, CONFIG)
    alone = [trainer.fit(make(), CONFIG) for trainer in folds()]
    for epoch, mean in enumerate(result.val_history):
        assert mean == pytest.approx(sum(r.val_history[epoch] for r in alone) / 3, abs=1e-9)
    best = result.best_epoch - 1
    assert result.fold_metrics == pytest.approx([r.val_history[best] for r in alone])
    assert result.best_metric == max(result.val_history) and result.val_std is not None
    assert result.test_metric == pytest.approx(sum(result.fold_tests) / 3)


def test_each_folds_validation_loss_is_recorded_at_the_best_mean_epoch():
    result = fit_folds(folds(), make, CONFIG)
    first = folds()[0]
    model = make()
    model.load_state_dict(result.best_state)  # the first fold's weights at the best mean epoch
    assert len(result.fold_losses) == 3
    assert result.fold_losses[0] == pytest.approx(first.mean_loss(model, first.val))


def test_steps_are_every_folds_optimiser_steps():
    result = fit_folds(folds(), make, CONFIG)
    assert result.steps == sum(CONFIG.max_epochs * math.ceil(len(f.train) / CONFIG.batch_size) for f in folds())


def test_pruning_sees_the_mean_and_stops_every_fold():
    seen = []
    result = fit_folds(folds(), make, CONFIG, on_epoch=lambda epoch, value: seen.append(value) or epoch == 2)
    assert result.pruned and result.epochs == 2 and seen == result.val_history


def test_the_same_seed_gives_the_same_scores():
    first, again = (fit_folds(folds(), make, CONFIG) for _ in range(2))
    assert first.val_history == again.val_history and first.fold_tests == again.fold_tests


def test_one_fold_is_refused():
    with pytest.raises(ValueError, match="folds=1 must be at least 2"):
        fit_folds(folds()[:1], make, CONFIG)


def test_a_tie_goes_to_the_later_epoch():
    """Folds that all reach their best early keep training; the final retrain's epoch count is the last best."""
    frozen = TrainConfig(max_epochs=5, batch_size=32, lr=1e-12, seed=1)  # weights barely move: a flat curve
    result = fit_folds(folds(), make, frozen)
    assert len(set(result.val_history)) == 1 and result.best_epoch == 5


def test_a_binding_time_limit_fits_every_folds_schedule(monkeypatch):
    tick(monkeypatch, trainer_module, cross_validation)
    config = TrainConfig(max_epochs=200, batch_size=8, lr=3e-3, seed=1, time_limit=1000)
    result = fit_folds(folds(), make, config)
    assert result.schedule_epochs < 200 and result.epochs == result.schedule_epochs
    assert result.stop_reason.startswith(f"schedule fitted to {result.schedule_epochs} of 200 epochs")
    assert result.steps == sum(result.epochs * math.ceil(len(f.train) / 8) for f in folds())


def test_a_schedule_fitted_short_is_scored_with_a_window_of_its_own_span(monkeypatch):
    """A 200-epoch budget smooths over 10 epochs; fitted to a few, the run is scored as a run of a few epochs, not
    by a trailing mean that lags its climbing curve by half of its training."""
    tick(monkeypatch, trainer_module, cross_validation)
    config = TrainConfig(max_epochs=200, batch_size=8, lr=3e-3, seed=1, time_limit=1000)
    result = fit_folds(folds(), make, config)
    window = smoothing_window(result.schedule_epochs)
    assert result.smoothing == window < smoothing_window(200)
    smoothed = trailing(result.val_history, window)
    assert result.best_metric == pytest.approx(max(smoothed), abs=1e-9)
    assert result.retrain_epochs == last_within_noise(smoothed, result.fold_metrics)


def test_the_retrain_takes_the_last_epoch_the_folds_cannot_tell_from_the_best():
    folds = [0.7, 0.9, 0.8, 0.8]  # standard error 0.041 at the best epoch
    assert last_within_noise([0.5, 0.8, 0.7, 0.78, 0.6], folds) == 4
    assert last_within_noise([0.5, 0.9, 0.6, 0.5], [0.9] * 4) == 2  # agreeing folds: a fall is a fall
    assert last_within_noise([3.0, 1.0, 1.03, 2.0], [0.9, 1.1, 1.0, 1.0], larger_is_better=False) == 3


LONG = TrainConfig(max_epochs=60, batch_size=32, lr=3e-3, seed=1)  # a trailing mean over 3 epochs


def trailing(curve, window):
    return [sum(curve[max(0, i + 1 - window):i + 1]) / len(curve[max(0, i + 1 - window):i + 1])
            for i in range(len(curve))]


def test_the_best_epoch_is_the_best_of_a_trailing_mean_not_one_lucky_epoch():
    """Folds of a few samples move the mean by a whole sample an epoch: a one-epoch spike must not score the
    candidate, so each fold's value at the best epoch is its mean over the last few epochs."""
    assert [smoothing_window(e) for e in (4, 39, 60, 625)] == [1, 1, 3, 10]
    result = fit_folds(folds(), make, LONG)
    alone = [trainer.fit(make(), LONG).val_history for trainer in folds()]
    smoothed = trailing(result.val_history, 3)
    assert result.best_metric == pytest.approx(max(smoothed), abs=1e-9)
    assert result.best_epoch == max(e for e, v in enumerate(smoothed, start=1) if v == pytest.approx(max(smoothed)))
    assert result.fold_metrics == pytest.approx([trailing(curve, 3)[result.best_epoch - 1] for curve in alone])
    assert max(result.val_history) > result.best_metric  # the raw curve's spike is not the score


def test_a_cross_validated_run_records_its_retrain_length():
    result = fit_folds(folds(), make, LONG)
    expected = last_within_noise(trailing(result.val_history, 3), result.fold_metrics)
    assert result.retrain_epochs == expected >= result.best_epoch
