"""Reading a search back from its storage: which study, its objectives, its trials ranked best first.

Report and export share these, so the ranking's first row is always what export
picks by default.

>>> name, url = resolve_study("digits-default", None, "results")
>>> study = open_study(name, url)
>>> ranked_trials(study)[0].number
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.search.failures import end_reason, retries
from nas.search.heartbeat import is_stale
from nas.search.pareto import pareto_mask
from nas.search.record import fold_loss
from nas.search.storage import JOURNAL, SQLITE, display_url, open_storage, study_names
from nas.search.study import StudyError



def resolve_study(study: str | None, storage: str | None, results_dir: str | Path = "results") -> tuple[str, str]:
    """(study name, storage URL) from what the user gave; either may be left out when only one study fits.

    Without ``storage`` the study lives in ``sqlite:///<results_dir>/<study>.db``, as the search writes it.
    """
    if storage is None:
        if study is None:
            found = sorted(p.stem for p in Path(results_dir).glob("*.db"))
            if len(found) != 1:
                where = f"{results_dir}/ holds {len(found)} studies ({', '.join(found)})" if found else \
                    f"{results_dir}/ holds no study (*.db); run scripts/search.py first or give --storage"
                raise StudyError(f"which study? {where}; name one with --study")
            study = found[0]
        return study, f"{SQLITE}{Path(results_dir) / study}.db"
    if study is None:
        names = study_names(_storage(storage))
        if len(names) != 1:
            raise StudyError(f"which study? {display_url(storage)} holds {len(names)} studies "
                             f"({', '.join(names) or 'none'}); name one with --study")
        study = names[0]
    return study, storage


def _storage(url: str) -> optuna.storages.BaseStorage:
    """The storage of a study to read: one that does not exist yet is refused rather than made."""
    if url.startswith(JOURNAL) and not Path(url[len(JOURNAL):]).is_file():
        raise StudyError(f"no study storage at {url[len(JOURNAL):]!r} (journal file)")
    if url.startswith(SQLITE):
        path = Path(url[len(SQLITE):])
        if str(path) != ":memory:" and not path.is_file():
            others = sorted(p.stem for p in path.parent.glob("*.db")) if path.parent.is_dir() else []
            listed = f"; studies in {path.parent}/: {', '.join(others)}" if others else ""
            raise StudyError(f"no study storage at {str(path)!r}{listed}")
    return open_storage(url)


def open_study(name: str, url: str) -> optuna.Study:
    """Load study ``name``; an unknown name is refused with the names the storage holds."""
    storage = _storage(url)
    names = study_names(storage)
    if name not in names:
        raise StudyError(f"study {name!r} is not in {display_url(url)}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class Objectives:
    """What a study optimises: column names (the task metric is ``val``), directions, and which is the metric."""

    names: tuple[str, ...]
    maximize: tuple[bool, ...]
    primary: int

    @property
    def multi(self) -> bool:
        return len(self.names) > 1


def objectives(study: optuna.Study) -> Objectives:
    """The study's objectives; the task metric is the one named like the study's ``metric`` attribute, else the first."""
    maximize = tuple(d == StudyDirection.MAXIMIZE for d in study.directions)
    given = study.metric_names
    metric = study.user_attrs.get("metric")
    primary = given.index(metric) if given and metric in given else 0
    names = tuple("val" if i == primary else f"objective_{given[i] if given else i}" for i in range(len(maximize)))
    return Objectives(names, maximize, primary)


def state_counts(trials: list[FrozenTrial]) -> str:
    """``3 complete, 2 pruned, 1 failed`` for messages and the report header. A RUNNING trial whose worker stopped
    beating (killed, crashed) is named as such: it is not training, and the next run of the search retries it."""
    counts = Counter(t.state for t in trials)
    words = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
             TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    text = ", ".join(f"{counts[s]} {w}" for s, w in words.items() if counts[s]) or "no trials"
    stale = sum(map(is_stale, trials))
    them = "it" if stale == 1 else "them"
    return text + (f"; {stale} running without a heartbeat: worker gone, the next run of the search retries {them}"
                   if stale else "")


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first: by the task metric, then the other objectives, then the mean fold validation
    loss where cross-validated (on a small set several trials can score every fold alike), then trial number.

    The first is therefore on the Pareto front of a multi-objective study (its most accurate point).
    """
    goal = objectives(study)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if not done:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet ({state_counts(trials)}); "
                         "run or resume the search until one completes")
    order = [goal.primary] + [i for i in range(len(goal.names)) if i != goal.primary]

    def key(t: FrozenTrial) -> tuple:
        loss = fold_loss(t)
        return tuple(-t.values[i] if goal.maximize[i] else t.values[i] for i in order) + (
            math.inf if loss is None else loss, t.number)

    return sorted(done, key=key)


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The ranked trials no other complete trial dominates (all of them tie-free for one objective: the best)."""
    ranked = ranked_trials(study)
    mask = pareto_mask([t.values for t in ranked], objectives(study).maximize)
    return [t for t, keep in zip(ranked, mask) if keep]


def pick_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """Trial ``number`` (it must have completed, and be a Pareto point when there are several objectives),
    or by default the best: the first of :func:`ranked_trials`."""
    ranked = ranked_trials(study)
    if number is None:
        return ranked[0]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise StudyError(f"trial {number} does not exist in study {study.study_name!r} "
                         f"(trials {min(trials)}..{max(trials)})")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        why = end_reason(trial, retries(list(trials.values())))
        raise StudyError(f"trial {number} did not complete ({trial.state.name}{': ' + why if why else ''}); "
                         f"complete trials, best first: {_numbers(ranked)}")
    if objectives(study).multi:
        front = pareto_trials(study)
        if number not in {t.number for t in front}:
            raise StudyError(f"trial {number} is not on the Pareto front of study {study.study_name!r}; "
                             f"Pareto trials, most accurate first: {_numbers(front)}")
    return trial


def _numbers(trials: list[FrozenTrial], limit: int = 10) -> str:
    shown = ", ".join(str(t.number) for t in trials[:limit])
    return shown + (f", ... ({len(trials)} in all)" if len(trials) > limit else "")


__all__ = ["Objectives", "objectives", "open_study", "pareto_trials", "pick_trial", "ranked_trials",
           "resolve_study", "state_counts"]
