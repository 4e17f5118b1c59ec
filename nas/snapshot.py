"""One read of the study per trial, shared by everything that looks at it while the trial runs and as it ends.

Optuna's cached storage queries the database on every ``get_trials`` (for new
trials and the running ones), 1 to 4 ms; a trial of ours used to make eight such
reads. Optuna keeps its own per-trial copy for its samplers, cleared by
``Study.ask`` and ``Study.tell``: inside an objective it shows the study as of the
trial's first read after the trial was made, and in callbacks as just after it ended.
A question that needs the study as it is now, and only a number, is a COUNT instead, and one
asked as a trial ends is answered by the count made with its state.
"""

from __future__ import annotations

from typing import Container

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.storage import SearchStorage


def count_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    """How many trials of ``study`` are in ``states`` now (a COUNT query where the storage is a
    :class:`SearchStorage`, which a search's always is)."""
    backend = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDB storage in its cache
    if isinstance(backend, SearchStorage):
        return backend.count_trials(study._study_id, states)
    return len(study.get_trials(deepcopy=False, states=states))


def count_when_ended(study: optuna.Study, trial: FrozenTrial, states: tuple[TrialState, ...]) -> int:
    """How many trials of ``study`` were in ``states`` as ``trial`` ended: counted in the transaction that wrote
    its state where this process's :class:`SearchStorage` ended it (no query of its own), else now."""
    backend = getattr(study._storage, "_backend", study._storage)
    counts = backend.counts_when_ended(trial._trial_id) if isinstance(backend, SearchStorage) else None
    if counts is None:
        return count_trials(study, states)
    return sum(counts.get(state, 0) for state in states)


def seen_trials(study: optuna.Study, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials as this trial sees them (read at most once per trial, then shared); not to be mutated."""
    return study._get_trials(deepcopy=False, states=states, use_cache=True)


__all__ = ["count_trials", "count_when_ended", "seen_trials"]
