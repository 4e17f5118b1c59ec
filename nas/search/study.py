"""The Optuna study of a search: its sampler and pruner, what it records about itself, and the resume rules.

The task, its seed, the objectives and the space are stored as study attributes,
and a resume with others is refused, so a study never mixes two searches.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna

from nas.search.budget import Budget
from nas.search.config import METRICS, SearchConfig, maximized
from nas.search.curve_pruning import CurvePruning
from nas.search.space import SearchSpace


class StudyError(ValueError):
    """A study that cannot be opened or resumed as asked; the message says why and what to do."""


def trial_seed(seed: int, number: int) -> int:
    """The training seed of trial ``number``: fixed by the search seed, different for every trial."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def make_sampler(name: str, seed: int, workers: int = 1) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate TPE over groups of parameters that occur together (group=True): the space is
        # conditional. Several workers: running trials count as bad (constant liar), so workers spread out.
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, constant_liar=workers > 1)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed)


def make_pruner(name: str, budget: Budget) -> optuna.pruners.BasePruner:
    """Hyperband's resource is the epoch, from the budget's smallest rung to its largest; no pruner judges a
    trial before the smallest rung."""
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=budget.min_epochs, max_resource=budget.epochs,
                                              reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=budget.min_epochs)
    return optuna.pruners.NopPruner()


def study_attrs(task_name: str, seed: int, metric: str, space: SearchSpace,
                objectives: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"task": task_name, "seed": seed, "metric": metric, "objectives": list(objectives or (metric,)),
            "space": space.name, "space_hash": space.hash(), "space_content": space.to_dict()}


def check_resume(name: str, stored: dict[str, Any], wanted: dict[str, Any], allow_space_change: bool) -> None:
    """Refuse to resume a study with another task, seed or space; the message says what to do instead."""
    if "task" not in stored:
        raise StudyError(f"study {name!r} was not made by attention-nas (it records no task); choose another --study")
    for key, flag in (("task", "--task"), ("seed", "--seed")):
        if stored[key] != wanted[key]:
            raise StudyError(f"study {name!r} was made with {key}={stored[key]!r}, not {wanted[key]!r}; rerun with "
                             f"{flag} {stored[key]} to resume it, or give --study a new name")
    made_with = stored.get("objectives", [stored.get("metric")])
    if made_with != wanted["objectives"]:
        raise StudyError(f"study {name!r} was made with objectives {','.join(made_with)}, not "
                         f"{','.join(wanted['objectives'])}; rerun with --objectives {','.join(made_with)} to resume "
                         f"it, or give --study a new name")
    if stored["space_hash"] != wanted["space_hash"] and not allow_space_change:
        raise StudyError(f"study {name!r} was made with search space {stored['space']!r} (hash {stored['space_hash']}), "
                         f"which differs from {wanted['space']!r} (hash {wanted['space_hash']}); resume with the original "
                         f"space, give --study a new name, or pass --allow-space-change")


def search_objectives(objectives: tuple[str, ...], task_name: str, metric: str) -> tuple[str, ...]:
    """The study's objectives in order: ``objectives`` as given (its metric must be the task's), or the metric."""
    if not objectives:
        return (metric,)
    if metric not in objectives:
        given = next(name for name in objectives if name in METRICS)
        raise ValueError(f"objectives={','.join(objectives)} name {given!r}, but task {task_name!r} is measured by "
                         f"{metric!r}; use {','.join(metric if n == given else n for n in objectives)}")
    return objectives


def load_search_study(config: SearchConfig, name: str, storage: optuna.storages.BaseStorage, larger_is_better: bool,
                      seed: int, budget: Budget, objectives: tuple[str, ...] = ("accuracy",)) -> optuna.Study:
    """The study ``name`` (made if absent) with this search's sampler, seeded by ``seed``, and pruner.

    With several objectives the metric is maximised (or minimised, for mse),
    every cost minimised and every probe's accuracy maximised; the study's own
    pruner is then a no-op, and pruning goes through :func:`curve_pruning`.
    """
    multi = len(objectives) > 1
    directions = ["maximize" if maximized(name, larger_is_better) else "minimize" for name in objectives]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler(config.sampler, seed, workers=config.jobs)
        pruner = optuna.pruners.NopPruner() if multi else make_pruner(config.pruner, budget)
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                    pruner=pruner, directions=directions)
        if multi and study.metric_names is None:  # experimental in Optuna, and its warning is no news to the user
            study.set_metric_names(list(objectives))
    return study


def curve_pruning(config: SearchConfig, study: optuna.Study, storage: optuna.storages.BaseStorage,
                  larger_is_better: bool, budget: Budget) -> CurvePruning | None:
    """The pruning of a multi-objective study (on its metric's curve, by the pruner asked for); None otherwise."""
    if len(study.directions) == 1 or config.pruner == "none":
        return None
    return CurvePruning(storage, study.study_name, make_pruner(config.pruner, budget), larger_is_better)


def worker_seed(seed: int, existing: int, worker: int) -> int:
    """The sampler seed of ``worker`` when the study holds ``existing`` trials: a resumed search does not
    redraw its first candidates, and no two workers draw alike."""
    return trial_seed(seed, existing) if worker == 0 else int(np.random.SeedSequence([seed, existing, worker]).generate_state(1)[0])



__all__ = ["StudyError", "check_resume", "curve_pruning", "load_search_study", "make_pruner", "make_sampler",
           "search_objectives", "study_attrs", "trial_seed", "worker_seed"]
