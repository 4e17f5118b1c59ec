"""A search's files: the weights of each trial that became the best so far, and running trials' checkpoints.

A search keeps the weights of every trial that became the best so far (for a
multi-objective study: that was not dominated when it finished), so export finds
them later from the storage alone: the path, relative to the results folder, is
the trial's user attribute ``weights``. Files are safetensors, written
atomically; reading never unpickles. Checkpoints of running trials live beside
them, so a retry after a crash finds its dead trial's.

>>> keep_if_best(trial, result.best_state, result.best_metric, results_dir="results")
'digits-default/weights/trial_12.safetensors'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import optuna
import torch
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.models.weights import load_weights, save_weights
from nas.search.pareto import dominates

WEIGHTS_ATTR = "weights"


def study_dir(results_dir: str | Path, study_name: str) -> Path:
    """``<results_dir>/<study>``, where a study's report, weights and export live.

    Characters a folder name should not hold become ``_`` (a study name is free text in Optuna).
    """
    return Path(results_dir) / (re.sub(r"[^A-Za-z0-9._=-]+", "_", study_name).strip("_.") or "study")


def checkpoint_path(results_dir: str | Path, study_name: str, number: int) -> Path:
    """``<results>/<study>/checkpoints/trial_<number>.pt``."""
    return study_dir(results_dir, study_name) / "checkpoints" / f"trial_{number}.pt"


def trial_weights_path(results_dir: str | Path, study_name: str, trial_number: int) -> Path:
    return study_dir(results_dir, study_name) / "weights" / f"trial_{trial_number}.safetensors"


def save_trial_weights(results_dir: str | Path, study_name: str, trial_number: int,
                       state_dict: Mapping[str, torch.Tensor]) -> str:
    """Save one trial's weights; returns their path relative to ``results_dir`` (POSIX form), as stored."""
    path = trial_weights_path(results_dir, study_name, trial_number)
    save_weights(path, state_dict, {"study": study_name, "trial": str(trial_number)})
    return path.relative_to(results_dir).as_posix()


def load_trial_weights(results_dir: str | Path, trial: optuna.trial.FrozenTrial) -> dict[str, torch.Tensor]:
    """The weights a search kept for ``trial``; the error says when it kept none and why."""
    relative = trial.user_attrs.get(WEIGHTS_ATTR)
    if relative is None:
        raise ValueError(f"trial {trial.number} has no saved weights (a search keeps only those of trials that "
                         "became the best so far); retrain it with --retrain-epochs E")
    path = Path(results_dir) / relative
    if not path.is_file():
        raise ValueError(f"trial {trial.number} kept its weights in {str(path)!r}, which does not exist; "
                         "point --results at the folder the search wrote to, or retrain with --retrain-epochs E")
    return load_weights(path)


def is_new_best(study: optuna.Study, values: float | Sequence[float],
                trials: Sequence[FrozenTrial] | None = None) -> bool:
    """Whether a trial scoring ``values`` would be the best so far: no complete trial is better.

    Ties count as new bests, and for several objectives "better" means
    dominating, so every trial that ends on the Pareto front had its weights kept.
    ``trials`` are the study's trials to compare with (default: read them now).
    """
    values = [values] if isinstance(values, (int, float)) else list(values)
    maximize = [d == StudyDirection.MAXIMIZE for d in study.directions]
    if len(values) != len(maximize):
        raise ValueError(f"study {study.study_name!r} has {len(maximize)} objective(s), got {len(values)} value(s)")
    done = study.get_trials(deepcopy=False) if trials is None else trials
    return not any(dominates(t.values, values, maximize) for t in done
                   if t.state == TrialState.COMPLETE and t.values is not None)


def keep_if_best(trial: optuna.Trial, state_dict: Mapping[str, torch.Tensor] | None,
                 values: float | Sequence[float], seen: Sequence[FrozenTrial],
                 results_dir: str | Path = "results") -> str | None:
    """Inside an objective, before it returns: save the weights if the trial is a new best, record the path.

    It compares with ``seen``, the study as the trial read it when it began: a trial that ended
    better meanwhile only means one weights file more, never a best without one.
    Returns the recorded relative path, or None when the trial is not a new best.
    """
    if state_dict is None or not is_new_best(trial.study, values, seen):
        return None
    relative = save_trial_weights(results_dir, trial.study.study_name, trial.number, state_dict)
    trial.set_user_attr(WEIGHTS_ATTR, relative)
    return relative


__all__ = ["WEIGHTS_ATTR", "checkpoint_path", "is_new_best", "keep_if_best", "load_trial_weights", "save_trial_weights",
           "study_dir", "trial_weights_path"]
