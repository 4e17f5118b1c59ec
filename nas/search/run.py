"""The search: an Optuna study in a storage, an objective per candidate, and resume that users can trust.

``trials`` is the study's total of finished (complete + pruned) trials, so the
same command after a crash or Ctrl-C runs only what is missing. The task, its
seed and the space are stored with the study and a resume with others is refused.

>>> outcome = run_search(SearchConfig(trials=20, space="tiny"))
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import optuna
from optuna.trial import TrialState

from nas.data import Task, load_task
from nas.search.config import SearchConfig, SearchOutcome, default_study_name
from nas.search.budget import Budget, plan_budget
from nas.search.failures import failing_message
from nas.search.heartbeat import fail_stale
from nas.search.interrupt import InterruptGuard
from nas.search.loop import run_trials
from nas.search.progress import FINISHED, print_summary
from nas.search.record import scored_by_spike
from nas.search.space import SearchSpace, load_space
from nas.search.storage import default_url, open_storage
from nas.search.study import (check_resume, curve_pruning, load_search_study, search_objectives, study_attrs,
                              worker_seed)
from nas.search.portfolio import enqueue_portfolio
from nas.search.workers import assign_devices, crowding, run_workers
from nas.training.trainer import Trainer, maximize


def run_search(config: SearchConfig, out: IO[str] | None = None) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; everything is checked before the study is touched."""
    out = out or sys.stdout
    space = load_space(config.space)
    devices = assign_devices(config.devices, config.jobs, config.device)
    task = load_task(config.task, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    space.check_input(task.input_spec)
    budget = plan_budget(task, config, space.largest_batch())  # a bad fold count is refused before the storage opens
    goals = search_objectives(config.objectives, task.name, task.metric)
    name = config.study or default_study_name(task.name, space.name)
    url = config.storage or default_url(config.results_dir, name)
    storage = open_storage(url)
    return _search_in(storage, config, space, devices, task, budget, goals, name, url, out)


def _search_in(storage: optuna.storages.BaseStorage, config: SearchConfig, space: SearchSpace, devices: list[str], task: Task,
               budget: Budget, goals: tuple[str, ...], name: str, url: str, out: IO[str]) -> SearchOutcome:
    """:func:`run_search` once its inputs are checked and its storage is open."""
    wanted = study_attrs(task.name, config.seed, task.metric, space, goals)
    try:
        stored = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        stored = None
    if stored is not None:
        check_resume(name, stored, wanted, config.allow_space_change)
        space = space.renamed_against(stored.get("space_origin", stored["space_content"]))
    else:
        wanted["space_origin"] = space.to_dict()  # what parameter names refer to, for the study's life

    existing = [] if stored is None else storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    finished = sum(t.state in FINISHED for t in existing)
    if finished >= config.trials:
        print(f"study {name!r} already has {finished} finished trials (asked for {config.trials}); nothing to run. "
              f"Ask for more with --trials.", file=out)
        return SearchOutcome("already_done", name, url, finished, config.trials)

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial replaces Optuna's
    larger_is_better = maximize(task.metric)
    study = load_search_study(config, name, storage, larger_is_better, worker_seed(config.seed, len(existing), 0),
                              budget, goals)
    for key, value in wanted.items():
        if stored is None or stored.get(key) != value:
            study.set_user_attr(key, value)
    where = devices[0] if config.jobs == 1 else f"{config.jobs} workers on {', '.join(sorted(set(devices)))}"
    print(f"study {name!r} in {url}: {finished} of {config.trials} trials finished; task {task.name} "
          f"({task.metric}), space {space.name} ({space.hash()}), device {where}, "
          f"sampler {config.sampler}, pruner {config.pruner}; {budget.describe()}"
          + (f", objectives {','.join(goals)}" if len(goals) > 1 else ""), file=out)
    if note := crowding(devices):
        print(note, file=out)
    if mixed := scored_by_spike(existing):
        print(f"note: {mixed}", file=out)
    if stored is None and config.portfolio and space.portfolio:
        entries = space.portfolio_params(task.input_spec)[:config.trials]
        enqueue_portfolio(study, entries)
        print(f"portfolio first: {', '.join(name for name, _ in entries)}", file=out)
    fail_stale(study, storage, existing)  # a trial its dead worker left RUNNING, with no heartbeat for the grace period
    curves = curve_pruning(config, study, storage, larger_is_better, budget)
    trainer = Trainer(task, devices[0])
    if config.jobs == 1:
        status = run_trials(study, storage, space, trainer, config, existing, out, curves=curves, budget=budget,
                            task=task)
    else:
        with InterruptGuard():  # Ctrl-C reaches every worker; each stops after its trial in hand
            status = run_workers(config, name, url, devices, len(existing), out, inline=lambda: run_trials(
                study, storage, space, trainer, config, existing, out, bar=False, curves=curves, budget=budget,
                task=task))
    return _finish(study, config, status, larger_is_better, url, out)


def _finish(study: optuna.Study, config: SearchConfig, status: str, larger_is_better: bool, url: str,
            out: IO[str]) -> SearchOutcome:
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    if status == "failing":
        print(failing_message(trials), file=out)
    elif status == "done" and finished < config.trials and config.timeout is None:
        status = "timeout"
        running = sum(t.state == TrialState.RUNNING for t in trials)
        print(f"stopped after {finished} of {config.trials} finished trials: {running} trials are still RUNNING "
              f"(their workers died, or run elsewhere); rerun to go on", file=out)
    elif status == "done" and finished < config.trials:
        status = "timeout"
        print(f"stopped by --timeout after {finished} of {config.trials} finished trials; rerun to go on", file=out)
    print_summary(trials, larger_is_better, study.study_name, url, out, objectives=tuple(study.metric_names or ()),
                  directions=[d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions],
                  results_dir=config.results_dir)
    return SearchOutcome(status, study.study_name, url, finished, config.trials)


__all__ = ["run_search"]
