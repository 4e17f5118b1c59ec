"""Duplicate candidates: one whose architecture and training equal a finished trial's takes that trial's result.

Equal means the same ``arch_hash`` and the same ``train_config`` but for the
per-trial ``seed``: training it again would only measure seed noise. The copy
records ``copied_from``, the number of the trial it copied.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.artifacts import WEIGHTS_ATTR
from nas.snapshot import seen_trials

OWN_ATTRS = ("arch", "summary", "arch_hash", "train_config", "seed", "device", WEIGHTS_ATTR)


def _training(train_config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train_config.items() if k != "seed"}


def find_original(study: optuna.Study, arch_hash: str, train_config: dict[str, Any]) -> FrozenTrial | None:
    """The first complete or pruned trial of ``study`` with this architecture and training, if any (inside an objective:
    the study as its trial sees it)."""
    wanted = _training(train_config)
    for trial in seen_trials(study, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = trial.user_attrs
        if attrs.get("arch_hash") == arch_hash and _training(attrs.get("train_config", {})) == wanted \
                and "copied_from" not in attrs:
            return trial
    return None


def copy_result(trial: optuna.Trial, original: FrozenTrial) -> None:
    """Give ``trial`` the measured attributes of ``original`` and record ``copied_from``."""
    for key, value in original.user_attrs.items():
        if key not in OWN_ATTRS:
            trial.set_user_attr(key, value)
    trial.set_user_attr("copied_from", original.number)


__all__ = ["copy_result", "find_original"]
