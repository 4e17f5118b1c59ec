"""A worker's heartbeat, and the rule that fails a trial whose worker died, then runs its candidate again.

Optuna's own heartbeat exists for RDB storages only; this one is a user attribute
(``heartbeat``, Unix seconds) that every storage holds: SQLite, PostgreSQL, MySQL,
journal files and the gRPC proxy. A thread writes it every
:data:`HEARTBEAT_SECONDS` while the trial runs. A RUNNING trial whose last beat
is older than :data:`GRACE_BEATS` heartbeats (a SIGKILL, an out-of-memory kill, a lost
machine) is failed by whichever worker sees it first, and its candidate is
enqueued again with ``retry_of``, so the retry resumes from the dead trial's
checkpoint. A retry whose worker dies too is failed with reason
``worker died twice`` and not run again: the study goes on without it.
Workers on several machines compare their clocks, which the grace period
tolerates to within about twenty seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search.portfolio import PORTFOLIO_ATTR
from nas.search.record import REASON, RETRY_OF

HEARTBEAT_ATTR = "heartbeat"
HEARTBEAT_SECONDS = 10.0
GRACE_BEATS = 3  # a trial is stale after this many heartbeats missed
DIED_TWICE = "worker died twice"


class Heartbeat:
    """Context manager: beats for ``trial`` from a daemon thread until the block ends.

    >>> with Heartbeat(trial):
    ...     train()
    """

    def __init__(self, trial: optuna.Trial, every: float | None = None):
        self.trial, self.every = trial, HEARTBEAT_SECONDS if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial.number}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # the trial was failed as stale meanwhile, or the storage is gone: stop beating
                return


def grace_seconds() -> float:
    """How long a running trial may go without a heartbeat before its worker counts as dead."""
    return GRACE_BEATS * HEARTBEAT_SECONDS


def is_stale(trial: FrozenTrial, now: float | None = None, grace: float | None = None) -> bool:
    """Whether ``trial`` is RUNNING with no heartbeat for ``grace`` seconds (or none at all since it started)."""
    if trial.state != TrialState.RUNNING:
        return False
    now = time.time() if now is None else now
    grace = grace_seconds() if grace is None else grace
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if beat is None:
        beat = trial.datetime_start.timestamp() if trial.datetime_start is not None else now
    return now - float(beat) > grace


def fail_stale(study: optuna.Study, storage: optuna.storages.BaseStorage, trials: Iterable[FrozenTrial],
               grace: float | None = None) -> list[int]:
    """Fail every stale trial of ``trials`` (a read of ``study``) and enqueue its candidate again, once;
    returns the numbers this call failed. Another worker racing for the same trial makes no second retry."""
    failed = []
    now, grace = time.time(), grace_seconds() if grace is None else grace
    for trial in [t for t in trials if is_stale(t, now, grace)]:
        again = RETRY_OF not in trial.user_attrs
        reason = f"worker died: no heartbeat for {grace:g} s; run again" if again else DIED_TWICE
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(study.study_name), trial.number)
            storage.set_trial_user_attr(trial_id, REASON, reason)
            study.tell(trial.number, state=TrialState.FAIL)  # refused (ValueError) once the trial has ended
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another worker failed it first, or it just ended
        failed.append(trial.number)
        if again and not any(t.user_attrs.get(RETRY_OF) == trial.number for t in study.get_trials(deepcopy=False)):
            kept = {PORTFOLIO_ATTR: trial.user_attrs[PORTFOLIO_ATTR]} if PORTFOLIO_ATTR in trial.user_attrs else {}
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number, **kept})  # an entry stays one
    return failed


__all__ = ["DIED_TWICE", "GRACE_BEATS", "grace_seconds", "HEARTBEAT_ATTR", "HEARTBEAT_SECONDS", "Heartbeat", "fail_stale", "is_stale"]
