"""Pruning for multi-objective studies: Optuna's own pruner, asked about the metric's learning curve alone.

Optuna's ``trial.report`` refuses trials of a multi-objective study, so each such
trial gets a twin in a single-objective shadow study in the same storage
(``<study>/curves``). The twin receives the validation curve, the shadow's pruner
(the very one a single-objective search uses) decides, and the twin ends as its
trial ends, so every later decision sees every earlier curve, across workers and
resumed runs alike.

>>> curves = CurvePruning(storage, "digits-default", pruner, larger_is_better=True)
>>> twin = curves.start(trial.number)
>>> twin.report(0.91, epoch=1)  # True: stop this trial
"""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

SHADOW_SUFFIX = "/curves"


def shadow_name(study_name: str) -> str:
    return study_name + SHADOW_SUFFIX


def is_shadow(study_name: str) -> bool:
    """Whether ``study_name`` names a shadow study, which lists of the user's studies leave out."""
    return study_name.endswith(SHADOW_SUFFIX)


class CurvePruning:
    """The shadow study of one multi-objective study; :meth:`start` opens the twin of a trial."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str, pruner: optuna.pruners.BasePruner,
                 larger_is_better: bool):
        self.shadow = optuna.create_study(storage=storage, study_name=shadow_name(study_name), load_if_exists=True,
                                          pruner=pruner, direction="maximize" if larger_is_better else "minimize",
                                          sampler=optuna.samplers.RandomSampler(seed=0))  # samples nothing

    def start(self, number: int) -> Twin:
        with warnings.catch_warnings():  # the storage beats for the trial itself; its twin needs no heartbeat
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = self.shadow.ask()
        trial.set_user_attr("trial", number)
        return Twin(self.shadow, trial)


class Twin:
    """The learning curve of one trial in the shadow study; :meth:`end` must follow, whatever happens."""

    def __init__(self, shadow: optuna.Study, trial: optuna.Trial):
        self.shadow, self.trial = shadow, trial

    def report(self, value: float, epoch: int) -> bool:
        """Record the metric after ``epoch``; True when the pruner stops the trial here."""
        self.trial.report(value, epoch)
        return self.trial.should_prune()

    def end(self, state: TrialState, value: float | None = None) -> None:
        """Finish as the trial did: complete with its metric, pruned, or failed."""
        self.shadow.tell(self.trial, value if state == TrialState.COMPLETE else None, state=state)


__all__ = ["CurvePruning", "SHADOW_SUFFIX", "Twin", "is_shadow", "shadow_name"]
