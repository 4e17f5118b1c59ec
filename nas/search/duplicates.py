"""Duplicate candidates: one whose architecture and training equal a finished trial's takes that trial's result.

Equal means the same ``arch`` (canonical JSON) and the same training recipe but
for the per-trial ``seed``: training it again would only measure seed noise. The
copy records ``copied_from``, the number of the trial it copied.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search.record import ARCH, FLAT, REASON, RESULT, result_of


def _training(train_config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train_config.items() if k != "seed"}


def find_original(trials: list[FrozenTrial], arch: str, train_config: dict[str, Any]) -> FrozenTrial | None:
    """The first complete or pruned trial of ``trials`` (a read of the study) with this architecture and
    training that is not itself a copy, if any."""
    wanted = _training(train_config)
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or trial.user_attrs.get(ARCH) != arch:
            continue
        result = result_of(trial)
        if "copied_from" not in result and _training(result.get("train", {})) == wanted:
            return trial
    return None


def copy_result(trial: optuna.Trial, original: FrozenTrial) -> None:
    """Give ``trial`` the measured attributes of ``original``, its ``result`` with ``copied_from`` added."""
    trial.set_user_attr(RESULT, {**result_of(original), "copied_from": original.number})
    for key in (*FLAT, REASON):
        if key in original.user_attrs:
            trial.set_user_attr(key, original.user_attrs[key])


__all__ = ["copy_result", "find_original"]
