"""The objective: sample one candidate, build, measure and train it, and record it all on its trial.

It returns the task metric of the best validation epoch, or, for several
objectives, that and the candidate's costs (``params``, ``flops``, ``latency``),
in the order the study was made with. A multi-objective trial is pruned on its
metric's learning curve through :mod:`nas.curve_pruning`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.artifacts import keep_if_best
from nas.checkpoint import checkpoint_path, load_checkpoint, remove_checkpoints, save_checkpoint
from nas.curve_pruning import CurvePruning
from nas.duplicates import copy_result, find_original
from nas.failures import record_failure
from nas.interrupt import InterruptGuard
from nas.measure import COSTS, count_flops, count_parameters, measure_latency
from nas.model import build_model
from nas.progress import FINISHED
from nas.snapshot import seen_trials
from nas.space import SearchSpace
from nas.storage import batched_writes
from nas.train import FitResult, Trainer

if TYPE_CHECKING:
    from nas.study import SearchConfig

class SurplusTrial(Exception):
    """A trial claimed after the study's total was reached (by finished trials and running ones ahead of it)."""


def trial_seed(seed: int, number: int) -> int:
    """The training seed of trial ``number``: fixed by the search seed, different for every trial."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def is_surplus(study: optuna.Study, number: int, total: int) -> bool:
    """Whether trial ``number`` would overshoot ``total``: finished trials plus running ones ahead of it reach it
    (in the study as that trial sees it, read after it was made)."""
    trials = seen_trials(study, states=(*FINISHED, TrialState.RUNNING))
    return sum(t.state in FINISHED or t.number < number for t in trials) >= total


class Objective:
    """Samples, builds, measures and trains one candidate, recording it all as trial user attributes.

    ``objectives`` are the study's objective names in order (the task metric and
    any of :data:`COSTS`); ``curves`` prunes when there are several. ``last_result``
    keeps the latest :class:`FitResult` (its ``best_state`` included) for callers that save weights.
    """

    def __init__(self, space: SearchSpace, trainer: Trainer, config: SearchConfig, guard: InterruptGuard,
                 objectives: tuple[str, ...] = (), curves: CurvePruning | None = None):
        self.space, self.trainer, self.config, self.guard = space, trainer, config, guard
        self.objectives = objectives or (trainer.metric,)
        self.curves = curves
        self.last_result: FitResult | None = None

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        if is_surplus(trial.study, trial.number, self.config.trials):
            trial.set_user_attr("reason", "surplus")
            raise SurplusTrial(f"trial {trial.number} is beyond the {self.config.trials} trials asked for")
        with batched_writes(trial):  # one transaction, before training: a killed trial's retry needs its parameters
            spec, train = self.space.sample(trial, self.trainer.input_spec)
            seed = trial_seed(self.config.seed, trial.number)
            train = replace(train, max_epochs=self.config.max_epochs, time_limit=self.config.trial_timeout, seed=seed)
            for key, value in {"arch": spec.to_json(), "summary": spec.summary(), "arch_hash": spec.hash(),
                               "train_config": asdict(train), "seed": seed, "device": str(self.trainer.device)}.items():
                trial.set_user_attr(key, value)
        original = find_original(trial.study, spec.hash(), asdict(train))
        if original is not None:  # trained already: take its result instead of training again
            copy_result(trial, original)  # written with the trial's state, as its results are
            if original.state == TrialState.PRUNED:
                raise optuna.TrialPruned(f"copy of pruned trial {original.number}")
            return original.value if len(self.objectives) == 1 else original.values
        if self.curves is None:
            return self._train(trial, spec, train, seed, _reporter(trial))
        twin = self.curves.start(trial.number)
        try:
            values = self._train(trial, spec, train, seed, twin.report)
        except optuna.TrialPruned:
            twin.end(TrialState.PRUNED)
            raise
        except BaseException:
            twin.end(TrialState.FAIL)
            raise
        twin.end(TrialState.COMPLETE, self.last_result.best_metric)
        return values

    def _train(self, trial: optuna.Trial, spec, train, seed: int,
               report: Callable[[float, int], bool]) -> float | list[float]:
        checkpoint = checkpoint_path(self.config.results_dir, trial.study.study_name, trial.number)
        resume, previous = self._resume(trial, report)
        try:
            with self.guard.interruptible():
                model = build_model(spec, self.trainer.input_spec, seed=seed)
                cost = self._measure(model)
                result = self.trainer.fit(model, train, on_epoch=lambda epoch, value: report(value, epoch),
                                          resume=resume, on_checkpoint=lambda state: save_checkpoint(checkpoint, state))
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            raise
        except Exception as err:  # e.g. out of memory: this candidate fails, the search goes on
            record_failure(trial, err)
            raise
        finally:  # a killed worker never gets here: its checkpoint stays for the retry
            remove_checkpoints(checkpoint, *previous)
        self.last_result = result
        record = {**cost, "val_history": result.val_history, "best_val": result.best_metric,
                  "best_epoch": result.best_epoch, "test": result.test_metric, "epochs": result.epochs,
                  "train_seconds": result.train_seconds}
        if result.stop_reason:
            record["reason"] = result.stop_reason
        for key, value in record.items():  # kept by the search's storage and written with the trial's state
            trial.set_user_attr(key, value)
        if result.pruned:
            raise optuna.TrialPruned(result.stop_reason)
        if len(self.objectives) == 1:
            values: float | list[float] = result.best_metric
        else:
            values = [result.best_metric if name not in COSTS else float(cost[COSTS[name]]) for name in self.objectives]
        keep_if_best(trial, result.best_state, values, results_dir=self.config.results_dir)
        return values

    def _resume(self, trial: optuna.Trial, report: Callable[[float, int], bool]) -> tuple[dict | None, list[Path]]:
        """For a retry of a trial whose worker died: the dead trial's last checkpoint (None if it has none or it
        is corrupt) and its path, with the learning curve so far reported again to the pruner."""
        this = next(t for t in seen_trials(trial.study) if t.number == trial.number)
        history = this.system_attrs.get("retry_history", [])
        if not history:
            return None, []
        previous = checkpoint_path(self.config.results_dir, trial.study.study_name, history[-1])
        state = load_checkpoint(previous)
        trial.set_user_attr("retry_of", history[-1])
        trial.set_user_attr("resumed_from_epoch", 0 if state is None else int(state["epoch"]))
        for epoch, value in enumerate([] if state is None else state["val_history"], start=1):
            report(value, epoch)
        return state, [previous]

    def _measure(self, model) -> dict[str, Any]:
        """Parameters, forward FLOPs and latency for one sample (batch of 1) on the search's device."""
        val = self.trainer.val
        inputs = (val.x[:1], None if val.mask is None else val.mask[:1])
        model.to(self.trainer.device)
        with self.trainer.autocast():
            latency = measure_latency(model, *inputs, repeats=5, warmup=1)
        return {"params": count_parameters(model), "flops": count_flops(model, *inputs), "latency_ms": 1000 * latency}


def _reporter(trial: optuna.Trial) -> Callable[[float, int], bool]:
    """Single objective: Optuna's own report and pruner; with no pruner, nothing (each report is a storage write,
    and the curve is recorded whole as ``val_history``)."""
    if isinstance(trial.study.pruner, optuna.pruners.NopPruner):
        return lambda value, epoch: False

    def report(value: float, epoch: int) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    return report


__all__ = ["Objective", "SurplusTrial", "is_surplus", "trial_seed"]
