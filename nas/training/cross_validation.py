"""k-fold cross-validation of one candidate: the folds train in step, one epoch each in turn, so that the
pruner and the choice of the best epoch see the mean fold curve as it grows, not one fold's noise.

The best epoch is chosen on that curve's trailing mean over a few epochs (:func:`smoothing_window`): folds of a
few series move the mean by a whole series per epoch, so the raw curve's maximum is often one lucky epoch above a
plateau. Scored by that spike, a candidate looks better than it is, noisy candidates look best of all, and the
final retrain stops where the plateau first falls more than a standard error below the spike.

The window is a share of the schedule the run trains: the budget, or the span a time limit fitted it to. A trailing
mean lags a climbing curve by half its window; a window set by the budget alone lags a schedule fitted short by a
large share of its training, and so scores the costly candidates that a time limit cuts (wide stems on long
series) under the curve they reached, while cheaper candidates that fit more of their schedule are not.

>>> trainers = [Trainer(fold, "cpu") for fold in cv_folds(task, 5, seed=0)]  # once per search, not per trial
>>> result = fit_folds(trainers, lambda: build_model(spec, task.input_spec, seed=0), config)
>>> result.best_metric, result.val_std, result.best_epoch
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable

import torch
from torch import nn

from nas.training.trainer import FitResult, Session, TrainConfig, Trainer, fit_schedule, note_fitted_schedule, snapshot

MAX_WINDOW = 10  # epochs; a trailing mean over more would lag a curve that still climbs


def fit_folds(trainers: list[Trainer], make_model: Callable[[], nn.Module], config: TrainConfig,
              on_epoch: Callable[[int, float], bool] | None = None) -> FitResult:
    """Train a fresh ``make_model()`` on each fold (one trainer per fold, its tensors already on the device)
    for ``config.max_epochs`` epochs, in step.

    After each epoch ``on_epoch(epoch, mean)`` sees the mean validation value over the folds and may stop the
    run (pruned). The result's curve is that mean. Its best epoch is the last best of the curve's trailing mean
    over :func:`smoothing_window` epochs, and ``best_metric`` that trailing mean, with each fold's trailing mean
    there in ``fold_metrics``, each fold model's test value at that epoch in ``fold_tests`` (``test_metric`` is
    their mean), and each fold's validation loss there in ``fold_losses`` (a finer score where accuracies tie).
    ``best_state`` holds the first fold's weights at that epoch. ``retrain_epochs``, the final retrain's
    length, is the last epoch whose trailing mean is within one standard error of the best
    (see :func:`last_within_noise`).
    ``config.time_limit`` bounds all folds together, and their schedule is fitted to it as in
    :meth:`Trainer.fit`. Not resumable: a retry trains from the start.
    """
    if len(trainers) < 2:
        raise ValueError(f"folds={len(trainers)} must be at least 2")
    torch.manual_seed(config.seed)  # the same initial weights and dropout stream on every rerun
    runs = [Session(trainer, make_model(), config) for trainer in trainers]
    result = FitResult(trainers[0].metric)
    best_states: list[dict[str, torch.Tensor]] = []
    window = smoothing_window(runs[0].epochs)
    fold_curves: list[list[float]] = [[] for _ in runs]
    smoothed: list[float] = []
    start = time.perf_counter()
    deadline = None if config.time_limit is None else start + config.time_limit
    epoch = 1
    while epoch <= runs[0].epochs:
        epoch_start = time.perf_counter()
        values, finite = [], True
        for run in runs:
            loss, timed_out = run.train_epoch(deadline)
            value = run.trainer.evaluate(run.model, run.trainer.val)
            finite = finite and math.isfinite(loss) and math.isfinite(value)
            values.append(value)
            if timed_out:
                result.stop_reason = f"time limit of {config.time_limit:g}s reached in epoch {epoch}"
                break
        result.epoch_seconds.append(time.perf_counter() - epoch_start)
        if not finite:
            result.stop_reason, result.pruned = f"non-finite loss or {result.metric} in epoch {epoch}", True
            break
        if len(values) < len(runs):  # out of time before every fold finished this epoch: it does not count
            break
        mean = sum(values) / len(values)
        result.val_history.append(mean)
        for curve, value in zip(fold_curves, values):
            curve.append(value)
        fitted = smoothing_window(runs[0].epochs)
        if fitted != window:  # the schedule was fitted shorter: so is the window
            window = fitted
            smoothed = [_tail_mean(result.val_history[:end], window) for end in range(1, epoch)]
            if result.best_epoch is not None:  # the held best is rescored; earlier epochs are not re-ranked
                result.best_metric = smoothed[result.best_epoch - 1]
                result.fold_metrics = [_tail_mean(curve[:result.best_epoch], window) for curve in fold_curves]
        fold_means = [_tail_mean(curve, window) for curve in fold_curves]
        smoothed.append(_tail_mean(result.val_history, window))
        if trainers[0].improves(smoothed[-1], result.best_metric) or smoothed[-1] == result.best_metric:
            result.best_metric, result.best_epoch, result.fold_metrics = smoothed[-1], epoch, fold_means  # ties: later
            best_states = [snapshot(run.model) for run in runs]
        if on_epoch is not None and on_epoch(epoch, mean):
            result.stop_reason, result.pruned = f"pruned after epoch {epoch}", True
            break
        if result.stop_reason is not None:
            break
        fit_schedule(runs, result.epoch_seconds, deadline)
        epoch += 1
    note_fitted_schedule(result, runs[0], config)
    result.smoothing = window
    if result.fold_metrics is not None:
        result.retrain_epochs = last_within_noise(smoothed, result.fold_metrics, trainers[0].larger_is_better)
    result.train_seconds = time.perf_counter() - start
    result.steps = sum(run.steps for run in runs)
    if best_states:
        result.fold_tests, result.fold_losses = [], []
        for run, state in zip(runs, best_states):
            run.model.load_state_dict(state)
            result.fold_tests.append(run.trainer.evaluate(run.model, run.trainer.test))
            result.fold_losses.append(run.trainer.mean_loss(run.model, run.trainer.val))
        result.test_metric = sum(result.fold_tests) / len(result.fold_tests)
        result.best_state = best_states[0]
    return result


def _tail_mean(curve: list[float], window: int) -> float:
    tail = curve[-window:]
    return sum(tail) / len(tail)


def smoothing_window(epochs: int) -> int:
    """Epochs in the trailing mean that picks the best epoch: a twentieth of the schedule's span, from 1 (short
    runs, whose every epoch matters) to 10 (long runs, whose noise does)."""
    return max(1, min(MAX_WINDOW, epochs // 20))


def last_within_noise(curve: list[float], best_folds: list[float], larger_is_better: bool = True) -> int:
    """The last epoch (1-based) whose value on ``curve`` (the folds' mean) is within one standard error of the best
    (``best_folds`` are the folds' values at the best epoch).

    On a small set the folds hold a few series each, so the mean curve's maximum is one noisy draw on a long
    plateau, and its epoch a lottery, while the models go on widening their margins (test accuracy on such sets
    keeps rising for hundreds of epochs). Of the epochs the curve cannot tell apart, the final retrain takes the
    most trained; a curve that falls clearly below its best (overfitting) still ends the count early.
    """
    best = max(curve) if larger_is_better else min(curve)
    error = statistics.stdev(best_folds) / math.sqrt(len(best_folds)) if len(best_folds) > 1 else 0.0
    close = [epoch for epoch, value in enumerate(curve, start=1)
             if (value >= best - error if larger_is_better else value <= best + error)]
    return close[-1]


__all__ = ["fit_folds", "last_within_noise", "smoothing_window"]
