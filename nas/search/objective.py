"""The objective: sample one candidate, build, measure and train it, and record it on its trial.

It returns the task metric of the best validation epoch, or, for several
objectives, that, the candidate's costs (``params``, ``flops``, ``latency``)
and its probe scores (``probe:<name>``), in the order the study was made with.
A multi-objective trial is pruned on its metric's learning curve through
:mod:`nas.search.curve_pruning`.

Each trial reads the study once, as it starts (:attr:`Objective.seen`): the
surplus check, duplicates, stale trials, the keeper of best weights and the
loop's callbacks all answer from that one read.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.data import Task
from nas.data.folds import cv_folds
from nas.models.measure import COSTS, count_flops, count_parameters, measure_latency
from nas.models.model import build_model
from nas.search.budget import Budget, plan_budget
from nas.search.config import SearchConfig, probe_of
from nas.search.curve_pruning import CurvePruning
from nas.search.duplicates import copy_result, find_original
from nas.search.failures import record_failure
from nas.search.heartbeat import Heartbeat, fail_stale
from nas.search.interrupt import InterruptGuard
from nas.search.kept_weights import checkpoint_path, keep_if_best
from nas.search.portfolio import PORTFOLIO_ATTR
from nas.search.probe_objectives import ProbeScorer
from nas.search.progress import FINISHED
from nas.search.record import ARCH, BEST_VAL, PROBES, REASON, RESULT, RETRY_OF, SUMMARY, TEST
from nas.search.space import SearchSpace
from nas.search.study import trial_seed
from nas.training.cross_validation import fit_folds
from nas.training.checkpoint import load_checkpoint, remove_checkpoints, save_checkpoint
from nas.training.memory import GIB, PROBE_SAMPLES, available_bytes, fit_batch, measure_memory_need
from nas.training.trainer import FitResult, Trainer, TrainConfig

CHECKPOINT_SECONDS = 20.0  # a retry loses at most this much training; more often costs the trainer's time


class SurplusTrial(Exception):
    """A trial claimed after the study's total was reached (by finished trials and running ones ahead of it)."""


def is_surplus(trials: list[FrozenTrial], number: int, total: int) -> bool:
    """Whether trial ``number`` would overshoot ``total``: finished trials plus running ones ahead of it reach it
    (in ``trials``, a read of the study made after that trial was)."""
    return sum(t.state in FINISHED or (t.state == TrialState.RUNNING and t.number < number) for t in trials) >= total


class Objective:
    """Samples, builds, measures and trains one candidate, recording it as trial user attributes.

    ``objectives`` are the study's objective names in order (the task metric and
    any of :data:`COSTS`); ``curves`` prunes when there are several. ``last_result``
    keeps the latest :class:`FitResult` (its ``best_state`` included) for callers that save weights.
    """

    def __init__(self, space: SearchSpace, trainer: Trainer, config: SearchConfig, guard: InterruptGuard,
                 storage: optuna.storages.BaseStorage, objectives: tuple[str, ...] = (),
                 curves: CurvePruning | None = None, budget: Budget | None = None, task: Task | None = None):
        self.space, self.trainer, self.config, self.guard, self.storage = space, trainer, config, guard, storage
        self.objectives = objectives or (trainer.metric,)
        self.curves = curves
        if budget is None and task is None:
            raise ValueError("the objective needs the task or its budget")
        self.budget = budget or plan_budget(task, config, space.largest_batch())
        if self.budget.folds and task is None:
            raise ValueError(f"a {self.budget.folds}-fold budget needs the task to cut the folds from")
        self.folds = [Trainer(fold, trainer.device) for fold in cv_folds(task, self.budget.folds, seed=config.seed)] \
            if self.budget.folds else None  # each fold's tensors on the device once, not once a trial
        self.last_result: FitResult | None = None
        self.seen: list[FrozenTrial] = []  # the study as the current trial read it when it started
        self.memory_allowed: int | None = None  # bytes a trial may use, fixed at the first trial
        probes = [probe_of(name) for name in self.objectives if probe_of(name) is not None]
        self.probes = ProbeScorer(probes, device=trainer.device, seed=config.seed,
                                  cache_dir=Path(config.results_dir) / "cache") if probes else None

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        with Heartbeat(trial):
            self.seen = trial.study.get_trials(deepcopy=False)
            fail_stale(trial.study, self.storage, self.seen)
            if is_surplus(self.seen, trial.number, self.config.trials):
                trial.set_user_attr(REASON, "surplus")
                raise SurplusTrial(f"trial {trial.number} is beyond the {self.config.trials} trials asked for")
            spec, train = self.space.sample(trial, self.trainer.input_spec)
            seed = trial_seed(self.config.seed, trial.number)
            sampled_batch = train.batch_size
            train = replace(train, max_epochs=self.budget.epochs, batch_size=self.budget.batch(sampled_batch),
                            time_limit=self.config.trial_timeout, seed=seed)
            trial.set_user_attr(ARCH, spec.to_json())
            trial.set_user_attr(SUMMARY, spec.summary())
            setup = {"train": asdict(train), "seed": seed, "device": str(self.trainer.device),
                     "budget": self.budget.to_dict()}
            if sampled_batch != train.batch_size:
                setup["batch_sampled"] = sampled_batch  # capped: an epoch of a small set takes several steps
            original = find_original(self.seen, spec.to_json(), setup["train"])
            if original is not None:  # trained already: take its result instead of training again
                copy_result(trial, original)
                if original.state == TrialState.PRUNED:
                    raise optuna.TrialPruned(f"copy of pruned trial {original.number}")
                return original.value if len(self.objectives) == 1 else original.values
            return self._fit(trial, spec, train, setup)

    def _fit(self, trial: optuna.Trial, spec, train, setup: dict[str, Any]) -> float | list[float]:
        if self.curves is None:
            return self._train(trial, spec, train, setup, _spare_portfolio(trial, _reporter(trial)))
        twin = self.curves.start(trial.number)
        try:
            values = self._train(trial, spec, train, setup, _spare_portfolio(trial, twin.report))
        except optuna.TrialPruned:
            twin.end(TrialState.PRUNED)
            raise
        except BaseException:
            twin.end(TrialState.FAIL)
            raise
        twin.end(TrialState.COMPLETE, self.last_result.best_metric)
        return values

    def _train(self, trial: optuna.Trial, spec, train, setup: dict[str, Any],
               report: Callable[[float, int], bool]) -> float | list[float]:
        checkpoint = checkpoint_path(self.config.results_dir, trial.study.study_name, trial.number)
        resume, previous = (None, []) if self.folds else self._resume(trial, report, setup)
        on_epoch = lambda epoch, value: report(value, epoch)  # noqa: E731
        try:
            with self.guard.interruptible():
                model = build_model(spec, self.trainer.input_spec, seed=setup["seed"])
                cost = self._measure(model)
                train = self._within_memory(model, train, setup)
                if self.folds:  # small data: the mean of k folds trained in step; a retry starts afresh
                    result = fit_folds(self.folds, lambda: build_model(spec, self.trainer.input_spec, seed=setup["seed"]),
                                       train, on_epoch=on_epoch)
                else:
                    result = self.trainer.fit(model, train, on_epoch=on_epoch, resume=resume,
                                              on_checkpoint=_every(CHECKPOINT_SECONDS, checkpoint))
                probes = self.probes(spec) if self.probes and not result.pruned else {}
        except KeyboardInterrupt:
            trial.set_user_attr(REASON, "interrupted")
            raise
        except Exception as err:  # e.g. out of memory: this candidate fails, the search goes on
            record_failure(trial, err, setup)
            raise
        finally:  # a killed worker never gets here: its checkpoint stays for the retry
            remove_checkpoints(checkpoint, *previous)
        self.last_result = result
        setup.update(val_history=result.val_history, best_epoch=result.best_epoch, epochs=result.epochs,
                     train_seconds=result.train_seconds, steps=result.steps)
        if result.schedule_epochs is not None and result.schedule_epochs < train.max_epochs:
            setup["schedule_epochs"] = result.schedule_epochs  # fitted to the time limit: the recipe it trained by
        if result.fold_metrics is not None:
            setup["cv"] = {"folds": len(result.fold_metrics), "std": result.val_std, "values": result.fold_metrics,
                           "tests": result.fold_tests, "losses": result.fold_losses,
                           "retrain_epochs": result.retrain_epochs, "smoothing": result.smoothing}
        trial.set_user_attr(RESULT, setup)
        flat = {BEST_VAL: result.best_metric, TEST: result.test_metric, **cost}
        if result.stop_reason:
            flat[REASON] = result.stop_reason
        for key, value in flat.items():
            trial.set_user_attr(key, value)
        if result.pruned:
            raise optuna.TrialPruned(result.stop_reason)
        if probes:
            trial.set_user_attr(PROBES, probes)
        if len(self.objectives) == 1:
            values: float | list[float] = result.best_metric
        else:
            values = [float(cost[COSTS[name]]) if name in COSTS else
                      probes[probe_of(name)]["val"] if probe_of(name) is not None else result.best_metric
                      for name in self.objectives]
        keep_if_best(trial, result.best_state, values, self.seen, results_dir=self.config.results_dir)
        return values

    def _resume(self, trial: optuna.Trial, report: Callable[[float, int], bool],
                setup: dict[str, Any]) -> tuple[dict | None, list[Path]]:
        """For a retry of a trial whose worker died: the dead trial's last checkpoint (None if it has none or it
        is corrupt) and its path, with the learning curve so far reported again to the pruner."""
        dead = trial.user_attrs.get(RETRY_OF)
        if dead is None:
            return None, []
        previous = checkpoint_path(self.config.results_dir, trial.study.study_name, dead)
        state = load_checkpoint(previous)
        setup["resumed_from_epoch"] = 0 if state is None else int(state["epoch"])
        for epoch, value in enumerate([] if state is None else state["val_history"], start=1):
            report(value, epoch)
        return state, [previous]

    def _within_memory(self, model, train: TrainConfig, setup: dict[str, Any]) -> TrainConfig:
        """``train`` at a batch that fits the memory a trial may use, measured before any training; raises
        :class:`MemoryBudgetError` (the trial fails alone, reason ``memory: ...``) when even a small one does not."""
        if self.memory_allowed is None:
            self.memory_allowed = (int(self.config.memory_gb * GIB) if self.config.memory_gb is not None else
                                   int(0.8 * available_bytes(self.trainer.device) / self.config.jobs))
        probe = self.trainer.train
        with self.trainer.autocast():
            need = measure_memory_need(model, probe.x[:PROBE_SAMPLES],
                                       None if probe.mask is None else probe.mask[:PROBE_SAMPLES])
        batch = fit_batch(need, train.batch_size, self.memory_allowed)
        setup["memory_gib"] = round(need.at(batch) / GIB, 3)
        if batch == train.batch_size:
            return train
        setup["batch_reduced_from"] = train.batch_size
        setup["train"] = {**setup["train"], "batch_size": batch}
        return replace(train, batch_size=batch)

    def _measure(self, model) -> dict[str, Any]:
        """Parameters, forward FLOPs and latency for one sample (batch of 1) on the search's device."""
        val = self.trainer.val
        inputs = (val.x[:1], None if val.mask is None else val.mask[:1])
        model.to(self.trainer.device)
        with self.trainer.autocast():
            latency = measure_latency(model, *inputs, repeats=5, warmup=1)
        return {"params": count_parameters(model), "flops": count_flops(model, *inputs), "latency_ms": 1000 * latency}


def _every(seconds: float, path: Path) -> Callable[[dict], None]:
    """A checkpoint callback that saves at most once per ``seconds`` of training: writing a model's and its
    optimiser's state after every short epoch would cost more than the work a retry saves."""
    last = time.monotonic()

    def save(state: dict) -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            save_checkpoint(path, state)
            last = time.monotonic()

    return save


def _spare_portfolio(trial: optuna.Trial, report: Callable[[float, int], bool]) -> Callable[[float, int], bool]:
    """A portfolio entry's curve still goes to the pruner, which judges later trials against it, but the entry
    itself trains to the end: it is the hand-made model the search's answer must never fall below, and
    Hyperband's bracket (a hash of the study's name and the trial's number) could otherwise cut it after one epoch."""
    if PORTFOLIO_ATTR not in trial.user_attrs:
        return report

    def report_only(value: float, epoch: int) -> bool:
        report(value, epoch)
        return False

    return report_only


def _reporter(trial: optuna.Trial) -> Callable[[float, int], bool]:
    """Single objective: Optuna's own report and pruner; with no pruner, nothing (each report is a storage write,
    and the curve is recorded whole in ``result``)."""
    if isinstance(trial.study.pruner, optuna.pruners.NopPruner):
        return lambda value, epoch: False

    def report(value: float, epoch: int) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    return report


__all__ = ["CHECKPOINT_SECONDS", "Objective", "SurplusTrial", "is_surplus"]
