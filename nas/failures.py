"""Failures that are the candidate's fault, recorded and survived; and the rule that stops a broken search.

A candidate that raises (out of memory on its device, a numerical error) fails
its own trial with the reason and traceback as user attributes; the memory it
held is freed and the search goes on. When most recent trials fail (``limit``
of the last ``window`` that this search ran, counted over every worker), the
fault is the setup's, not a candidate's, and the search stops saying so.
"""

from __future__ import annotations

import datetime as dt
import gc
import traceback

import optuna
import torch
from typing import Mapping, Sequence

from optuna.trial import FrozenTrial, TrialState

from nas.snapshot import seen_trials

NOT_THE_CANDIDATES = ("interrupted", "surplus")  # reasons of trials that failed by the search's own doing
WINDOW, LIMIT = 20, 10


def record_failure(trial: optuna.Trial, err: BaseException) -> None:
    """Store ``reason`` (the error's type and first line) and ``traceback`` on ``trial``."""
    first = str(err).splitlines()[0] if str(err) else ""
    trial.set_user_attr("reason", f"{type(err).__name__}: {first}")
    trial.set_user_attr("traceback", "".join(traceback.format_exception(err)))


def retries(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """Trial number of each stale trial that was retried -> number of its retry (from ``retry_history``)."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def end_reason(trial: FrozenTrial, retried: Mapping[int, int]) -> str | None:
    """Why ``trial`` ended short (failed, pruned, stopped; None when nothing says): its recorded reason or,
    for a trial Optuna failed as stale, that its worker died and which trial retried it (``retried``:
    :func:`retries` of the study's trials).

    Optuna fails a stale trial before any code of ours runs and refuses writes to it afterwards, so
    that reason is read off the retry, which lists the trials it retries.
    """
    if "reason" in trial.user_attrs:
        return trial.user_attrs["reason"]
    retry = retried.get(trial.number)
    if trial.state != TrialState.FAIL or retry is None:
        return None
    return f"stale: its worker stopped sending heartbeats (killed or crashed); retried as trial {retry}"


def free_memory() -> None:
    """Return what a failed candidate held: Python cycles, then the CUDA cache."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FailureLimit:
    """Optuna callback: stop when ``limit`` of the last ``window`` trials since the search began have failed.

    It counts over every worker's trials, but only when a trial of its own worker fails: a worker whose
    trials go on succeeding goes on, and reads nothing.
    """

    def __init__(self, window: int = WINDOW, limit: int = LIMIT):
        self.window, self.limit, self.tripped = window, limit, False
        self.since = dt.datetime.now()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            return
        free_memory()
        ended = [t for t in seen_trials(study, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
                 if t.datetime_start is not None and t.datetime_start >= self.since
                 and t.user_attrs.get("reason") not in NOT_THE_CANDIDATES]
        recent = sorted(ended, key=lambda t: t.number)[-self.window:]
        if sum(t.state == TrialState.FAIL for t in recent) >= self.limit:
            self.tripped = True
            study.stop()


def failing_message(trials: list[FrozenTrial]) -> str:
    """The line that says why a search stopped as failing, with the last failure's reason."""
    failed = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("reason") not in NOT_THE_CANDIDATES]
    last = failed[-1].user_attrs.get("reason", "unknown") if failed else "unknown"
    return (f"stopped: {LIMIT} or more of the last {WINDOW} trials failed, so something is systematically wrong "
            f"(the setup, not one candidate); last reason: {last}")


__all__ = ["FailureLimit", "failing_message", "end_reason", "free_memory", "record_failure", "retries"]
