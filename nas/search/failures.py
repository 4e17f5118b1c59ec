"""Failures that are the candidate's fault, recorded and survived; and the rule that stops a broken search.

A candidate that raises (out of memory on its device, a numerical error) fails
its own trial with the reason and traceback as user attributes; the memory it
held is freed and the search goes on. When most recent trials fail (``limit``
of the last ``window`` that this search ran, counted over every worker), the
fault is the setup's, not a candidate's, and the search stops saying so.
"""

from __future__ import annotations

import gc
import traceback
from typing import Any, Callable, Mapping, Sequence

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.search.record import REASON, RESULT, RETRY_OF

NOT_THE_CANDIDATES = ("interrupted", "surplus")  # reasons of trials that failed by the search's own doing
WINDOW, LIMIT = 20, 10


def record_failure(trial: optuna.Trial, err: BaseException, setup: dict[str, Any] | None = None) -> None:
    """Store ``reason`` (the error's own ``reason``, else its type and first line) and, in ``result``, the
    traceback on ``trial``."""
    first = str(err).splitlines()[0] if str(err) else ""
    trial.set_user_attr(RESULT, {**(setup or {}), "traceback": "".join(traceback.format_exception(err))})
    trial.set_user_attr(REASON, getattr(err, "reason", None) or f"{type(err).__name__}: {first}")


def retries(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """Trial number of each trial whose worker died -> number of the trial that ran its candidate again."""
    return {t.user_attrs[RETRY_OF]: t.number for t in trials if RETRY_OF in t.user_attrs}


def end_reason(trial: FrozenTrial, retried: Mapping[int, int]) -> str | None:
    """Why ``trial`` ended short (failed, pruned, stopped; None when nothing says): its recorded reason, and for a
    trial whose worker died, which trial ran it again (``retried``: :func:`retries` of the study's trials)."""
    reason = trial.user_attrs.get(REASON)
    retry = retried.get(trial.number)
    if reason is not None and retry is not None:
        return f"{reason} as trial {retry}"
    return reason


def free_memory() -> None:
    """Return what a failed candidate held: Python cycles, then the CUDA cache."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FailureLimit:
    """Optuna callback: stop when ``limit`` of the last ``window`` trials since the search began have failed.

    It counts over every worker's trials in ``seen()`` (the read of the study the ending trial made as it
    started), and only when a trial of its own worker fails: a worker whose trials go on succeeding goes on.
    ``first`` is the number of the first trial this search may count (the study's size when it began).
    """

    def __init__(self, seen: Callable[[], Sequence[FrozenTrial]], first: int = 0, window: int = WINDOW,
                 limit: int = LIMIT):
        self.seen, self.first, self.window, self.limit, self.tripped = seen, first, window, limit, False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            return
        free_memory()
        trials = [t for t in self.seen() if t.number != trial.number] + [trial]
        ended = [t for t in trials if t.number >= self.first and t.state.is_finished()
                 and t.user_attrs.get(REASON) not in NOT_THE_CANDIDATES]
        recent = sorted(ended, key=lambda t: t.number)[-self.window:]
        if sum(t.state == TrialState.FAIL for t in recent) >= self.limit:
            self.tripped = True
            study.stop()


def failing_message(trials: list[FrozenTrial]) -> str:
    """The line that says why a search stopped as failing, with the last failure's reason."""
    failed = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(REASON) not in NOT_THE_CANDIDATES]
    last = failed[-1].user_attrs.get(REASON, "unknown") if failed else "unknown"
    return (f"stopped: {LIMIT} or more of the last {WINDOW} trials failed, so something is systematically wrong "
            f"(the setup, not one candidate); last reason: {last}")


__all__ = ["FailureLimit", "failing_message", "end_reason", "free_memory", "record_failure", "retries"]
