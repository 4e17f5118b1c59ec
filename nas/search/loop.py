"""The loop one process runs: claim trials of a study until it holds its total, with several processes alike.

A trial claimed beyond the total fails as ``surplus`` before training (see
:func:`nas.search.objective.is_surplus`); a process then waits while running trials
may still reach the total, taking one more if one fails or its worker dies.
"""

from __future__ import annotations

import time
from typing import IO

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.data import Task
from nas.search.budget import Budget
from nas.search.config import SearchConfig
from nas.search.curve_pruning import CurvePruning
from nas.search.failures import FailureLimit
from nas.search.heartbeat import fail_stale, grace_seconds
from nas.search.interrupt import InterruptGuard
from nas.search.objective import Objective
from nas.search.progress import FINISHED, LOG_EVERY_SECONDS, Progress
from nas.search.record import REASON
from nas.search.space import SearchSpace
from nas.training.trainer import Trainer

WAIT_SECONDS = 0.25  # between looks at the storage while other workers finish the last trials


def run_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, space: SearchSpace, trainer: Trainer,
               config: SearchConfig, existing: list, out: IO[str], bar: bool = True, speaks: bool = True,
               curves: CurvePruning | None = None, budget: Budget | None = None, task: Task | None = None) -> str:
    """Run trials in this process until the study holds ``config.trials`` finished ones; returns the status:
    ``done``, ``interrupted`` or ``failing``. ``speaks``: this process logs the study's progress (a spawned
    worker leaves that to the first). ``curves`` prunes a multi-objective study. ``budget`` (default:
    planned from ``task``) sets each trial's epochs, batch cap and folds; cross-validation needs ``task``."""
    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    progress = Progress(config.trials, existing, trainer.larger_is_better, config.quiet, out, bar=bar,
                        log_every=LOG_EVERY_SECONDS if speaks else None, deadline=deadline)
    status = "done"
    with InterruptGuard() as guard:
        objective = Objective(space, trainer, config, guard, storage, objectives=tuple(study.metric_names or ()),
                              curves=curves, budget=budget, task=task)
        failures = FailureLimit(lambda: objective.seen, first=len(existing))
        callbacks = [progress, failures, guard.stop_if_pending, _stop_when_claimed(config.trials, objective)]
        try:
            while not (guard.pending or failures.tripped) and _wants_more(study, storage, config.trials, deadline):
                left = None if deadline is None else deadline - time.monotonic()
                study.optimize(objective, timeout=left, callbacks=callbacks, catch=(Exception,))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            progress.close()
        if guard.pending:
            status = "interrupted"
    return "failing" if status == "done" and failures.tripped else status


def _stop_when_claimed(total: int, objective: Objective):
    """Optuna callback: stop once finished and running trials reach ``total``, counted on the read the trial made
    as it started, with itself finished: no further trial is claimed in vain. (The objective's surplus check stays
    the rule: a trial claimed after another worker's began a moment later is cancelled before training.)"""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        others = [t for t in objective.seen if t.number != trial.number]
        claimed = sum(t.state in (*FINISHED, TrialState.RUNNING) for t in others) + (trial.state in FINISHED)
        if trial.user_attrs.get(REASON) == "surplus" or claimed >= total:
            study.stop()

    return callback


def _wants_more(study: optuna.Study, storage: optuna.storages.BaseStorage, total: int, deadline: float | None) -> bool:
    """Whether to claim another trial, waiting while running trials may still reach ``total``.

    The wait ends when a running trial ends or, its worker dead, is failed as stale (no heartbeat for the
    grace period) and its candidate enqueued again; it gives up after twice that grace period.
    """
    waited = 0.0
    while deadline is None or time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False)
        if fail_stale(study, storage, trials):
            continue
        if sum(t.state in FINISHED for t in trials) >= total:
            return False
        claimed = sum(t.state in (*FINISHED, TrialState.RUNNING) for t in trials)
        if claimed < total or any(t.state == TrialState.WAITING for t in trials):
            return True
        if waited > 2 * grace_seconds():
            return False
        time.sleep(WAIT_SECONDS)
        waited += WAIT_SECONDS
    return False


__all__ = ["run_trials"]
