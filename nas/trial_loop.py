"""The loop one process runs: claim trials of a study until it holds its total, with several processes alike.

A trial claimed beyond the total fails as ``surplus`` before training (see
:func:`nas.objective.is_surplus`); a process then waits while running trials may
still reach the total, taking one more if one fails or its worker dies.
"""

from __future__ import annotations

import time
import warnings
from typing import IO, TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from nas.curve_pruning import CurvePruning
from nas.failures import FailureLimit
from nas.interrupt import InterruptGuard
from nas.objective import Objective
from nas.progress import FINISHED, Progress
from nas.snapshot import count_when_ended
from nas.space import SearchSpace
from nas.train import Trainer

if TYPE_CHECKING:
    from nas.study import SearchConfig

WAIT_SECONDS = 0.25  # between looks at the storage while other workers finish the last trials
HEARTBEAT_SECONDS = 10  # a trial with no heartbeat for 3 of these is stale: its worker died


def run_trials(study: optuna.Study, space: SearchSpace, trainer: Trainer, config: SearchConfig, existing: list,
               out: IO[str], bar: bool = True, curves: CurvePruning | None = None) -> str:
    """Run trials in this process until the study holds ``config.trials`` finished ones; returns the status:
    ``done``, ``interrupted`` or ``failing``. ``curves`` prunes a multi-objective study."""
    progress = Progress(config.trials, existing, trainer.larger_is_better, config.quiet, out, bar=bar)
    failures = FailureLimit()
    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    status = "done"
    with InterruptGuard() as guard:
        objective = Objective(space, trainer, config, guard, objectives=tuple(study.metric_names or ()), curves=curves)
        callbacks = [progress, failures, guard.stop_if_pending, _stop_when_claimed(config.trials)]
        try:
            while not (guard.pending or failures.tripped) and _wants_more(study, config.trials, deadline):
                left = None if deadline is None else deadline - time.monotonic()
                study.optimize(objective, timeout=left, callbacks=callbacks, catch=(Exception,))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            progress.close()
        if guard.pending:
            status = "interrupted"
    return "failing" if status == "done" and failures.tripped else status


def _stop_when_claimed(total: int):
    """Optuna callback: stop once finished and running trials reach ``total`` as the trial ended (and so once
    finished ones do), so no surplus trial is claimed in the first place (the objective's check stays the rule:
    one claimed after another worker's trial began a moment later is cancelled before training)."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get("reason") == "surplus" \
                or count_when_ended(study, trial, (*FINISHED, TrialState.RUNNING)) >= total:
            study.stop()

    return callback


def _wants_more(study: optuna.Study, total: int, deadline: float | None) -> bool:
    """Whether to claim another trial, waiting while running trials may still reach ``total``.

    The wait ends when a running trial ends or, its worker dead, is failed as stale
    (no heartbeat for the grace period); running trials with no heartbeat at all
    (a crashed search of an older version) end it after twice that grace period.
    """
    waited = 0.0
    while deadline is None or time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.state in FINISHED for t in trials) >= total:
            return False
        if len(trials) < total:
            return True
        if waited > 6 * HEARTBEAT_SECONDS:
            return False
        time.sleep(WAIT_SECONDS)
        waited += WAIT_SECONDS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return False


__all__ = ["HEARTBEAT_SECONDS", "run_trials"]
