"""The search: an Optuna study in a storage, an objective per candidate, and resume that users can trust.

``trials`` is the study's total of finished (complete + pruned) trials, so the
same command after a crash or Ctrl-C runs only what is missing. The task, its
seed and the space are stored with the study and a resume with others is refused.

>>> outcome = run_search(SearchConfig(trials=20, space="tiny"))
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState

from nas import trial_loop
from nas.curve_pruning import CurvePruning
from nas.failures import failing_message
from nas.interrupt import InterruptGuard
from nas.measure import COSTS
from nas.objective import trial_seed
from nas.progress import FINISHED, print_summary
from nas.sampler import LazyGroupTPESampler
from nas.space import SearchSpace, load_space
from nas.storage import SearchStorage
from nas.tasks import Task, load_task
from nas.train import Trainer, maximize
from nas.trial_loop import run_trials
from nas.workers import assign_devices, crowding, run_workers

SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("hyperband", "median", "none")
METRICS = ("accuracy", "mse")
OBJECTIVES = (*METRICS, *COSTS)
MAX_RETRIES = 3


class StudyError(ValueError):
    """A study that cannot be opened or resumed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search command asks for; ``None`` storage means ``sqlite:///<results_dir>/<study>.db``."""

    trials: int = 200
    task: str = "digits"
    space: str = "default"
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    max_epochs: int = 8
    timeout: float | None = None  # seconds for the whole search; no trial starts after it
    trial_timeout: float | None = None  # seconds of training per trial
    seed: int = 0
    device: str = "auto"
    allow_space_change: bool = False
    quiet: bool = False
    results_dir: str = "results"
    jobs: int = 1  # worker processes on the one storage
    devices: tuple[str, ...] | None = None  # devices the workers spread over (None: every CUDA device, else --device)
    objectives: tuple[str, ...] = ()  # () = the task's metric alone; else it and costs, e.g. ("accuracy", "params")

    def __post_init__(self) -> None:
        for name in ("trials", "max_epochs", "jobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        for name in ("timeout", "trial_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds > 0")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner={self.pruner!r} is unknown; allowed: {', '.join(PRUNERS)}")
        check_objectives(self.objectives)


def check_objectives(names: tuple[str, ...]) -> None:
    """Objectives are the task metric once, plus costs to minimise, each at most once."""
    for name in names:
        if name not in OBJECTIVES:
            raise ValueError(f"objective {name!r} is unknown; allowed: {', '.join(OBJECTIVES)}")
    if names and sum(name in METRICS for name in names) != 1:
        raise ValueError(f"objectives={','.join(names)} must name the task metric ({' or '.join(METRICS)}) "
                         f"exactly once, e.g. accuracy,params")
    if len(set(names)) != len(names):
        raise ValueError(f"objectives={','.join(names)} names one objective twice")


@dataclass(frozen=True)
class SearchOutcome:
    """How a search ended: ``done``, ``already_done``, ``interrupted``, ``timeout`` or ``failing``."""

    status: str
    study_name: str
    storage: str
    finished: int
    trials: int


def default_study_name(task: str, space: str) -> str:
    """``digits-default``; characters a file name should not hold become ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{task}-{space}").strip("_")


def make_sampler(name: str, seed: int, workers: int = 1) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate TPE over groups of parameters that occur together (Optuna's group=True),
        # drawing only the groups a trial uses. One worker: no constant liar, so sampling reads
        # the storage once per trial; several: running trials count as bad, so workers spread out.
        return LazyGroupTPESampler(seed=seed, constant_liar=workers > 1)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_storage(url: str, heartbeat: bool = False) -> SearchStorage:
    """An Optuna RDB storage that several processes can share.

    SQLite: the folder is made first, writes wait up to 30 s for the lock, the
    journal is WAL and every transaction begins IMMEDIATE (a deferred one that
    later writes fails at once with "database is locked" instead of waiting),
    but the storage's one-statement reads, which need no transaction.
    PostgreSQL: ``postgresql://`` uses the psycopg (3) driver of the ``postgres``
    extra. ``heartbeat`` turns on Optuna's heartbeats, so a trial whose worker
    died is failed as stale and retried with the same parameters.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        kwargs = {"connect_args": {"timeout": 30}}
        path = Path(url[len("sqlite:///"):])
        if path.name and str(path) != ":memory:":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StudyError(f"cannot create folder {str(path.parent)!r} for storage {url!r}: {err.strerror}") from None
            if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise StudyError(f"storage {url!r} cannot be written: no write permission in {str(path.parent)!r}")
    elif url.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        url = "postgresql+psycopg:" + url.split(":", 1)[1]
        if importlib.util.find_spec("psycopg") is None:
            raise StudyError(f"storage {url!r} needs the PostgreSQL driver psycopg, which is not installed; "
                             f"install the 'postgres' extra: pip install -e '.[postgres]'")
    elif not url.startswith("sqlite:"):  # the storage's own SQL is written for these two (nas.storage_sql)
        raise StudyError(f"storage {url!r} is not supported; use sqlite:///<file> or postgresql://user@host/db")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            beats: dict[str, Any] = {}
            if heartbeat:
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
                every = trial_loop.HEARTBEAT_SECONDS
                beats = {"heartbeat_interval": every, "grace_period": 3 * every,
                         "heartbeat_stale_trial_callback": retry}
            storage = SearchStorage(url, engine_kwargs=kwargs, **beats)
    except Exception as err:  # SQLAlchemy raises many types for bad URLs, drivers and hosts
        raise StudyError(f"cannot open storage {url!r}: {str(err).splitlines()[0]}") from None
    if url.startswith("sqlite:"):
        _sqlite_for_many_writers(storage.engine)
    return storage


def _sqlite_for_many_writers(engine: sqlalchemy.engine.Engine) -> None:
    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's begin event below issues BEGIN itself
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners reopen with them


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


def run_search(config: SearchConfig, out: IO[str] | None = None) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; everything is checked before the study is touched."""
    out = out or sys.stdout
    space = load_space(config.space)
    devices = assign_devices(config.devices, config.jobs, config.device)
    task = load_task(config.task, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    goals = search_objectives(config.objectives, task.name, task.metric)
    name = config.study or default_study_name(task.name, space.name)
    url = config.storage or f"sqlite:///{Path(config.results_dir) / name}.db"
    storage = open_storage(url, heartbeat=True)
    try:
        return _search_in(storage, config, space, devices, task, goals, name, url, out)
    finally:
        storage.engine.dispose()  # every connection closed: SQLite folds its write-ahead log into the database file


def _search_in(storage: SearchStorage, config: SearchConfig, space: SearchSpace, devices: list[str], task: Task,
               goals: tuple[str, ...], name: str, url: str, out: IO[str]) -> SearchOutcome:
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

    existing = [] if stored is None else storage.get_all_trials(storage.get_study_id_from_name(name))
    finished = sum(t.state in FINISHED for t in existing)
    if finished >= config.trials:
        print(f"study {name!r} already has {finished} finished trials (asked for {config.trials}); nothing to run. "
              f"Ask for more with --trials.", file=out)
        return SearchOutcome("already_done", name, url, finished, config.trials)

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial replaces Optuna's
    larger_is_better = maximize(task.metric)
    study = load_search_study(config, name, storage, larger_is_better, worker_seed(config.seed, len(existing), 0), goals)
    for key, value in wanted.items():
        if stored is None or stored.get(key) != value:
            study.set_user_attr(key, value)
    where = devices[0] if config.jobs == 1 else f"{config.jobs} workers on {', '.join(sorted(set(devices)))}"
    print(f"study {name!r} in {url}: {finished} of {config.trials} trials finished; task {task.name} "
          f"({task.metric}), space {space.name} ({space.hash()}), device {where}, "
          f"sampler {config.sampler}, pruner {config.pruner}, max {config.max_epochs} epochs"
          + (f", objectives {','.join(goals)}" if len(goals) > 1 else ""), file=out)
    if note := crowding(devices):
        print(note, file=out)
    curves = curve_pruning(config, study, storage, larger_is_better)
    trainer = Trainer(task, devices[0])
    if config.jobs == 1:
        status = run_trials(study, space, trainer, config, existing, out, curves=curves)
    else:
        with InterruptGuard():  # Ctrl-C reaches every worker; each stops after its trial in hand
            status = run_workers(config, name, url, devices, len(existing), out, inline=lambda: run_trials(
                study, space, trainer, config, existing, out, bar=False, curves=curves))
    return _finish(study, config, status, larger_is_better, url, out)


def search_objectives(objectives: tuple[str, ...], task_name: str, metric: str) -> tuple[str, ...]:
    """The study's objectives in order: ``objectives`` as given (its metric must be the task's), or the metric."""
    if not objectives:
        return (metric,)
    if metric not in objectives:
        given = next(name for name in objectives if name in METRICS)
        raise ValueError(f"objectives={','.join(objectives)} name {given!r}, but task {task_name!r} is measured by "
                         f"{metric!r}; use {','.join(metric if n == given else n for n in objectives)}")
    return objectives


def load_search_study(config: SearchConfig, name: str, storage: optuna.storages.RDBStorage, larger_is_better: bool,
                      seed: int, objectives: tuple[str, ...] = ("accuracy",)) -> optuna.Study:
    """The study ``name`` (made if absent) with this search's sampler, seeded by ``seed``, and pruner.

    With several objectives the metric is maximised (or minimised, for mse) and
    every cost minimised; the study's own pruner is then a no-op, and pruning
    goes through :func:`curve_pruning`.
    """
    multi = len(objectives) > 1
    directions = ["maximize" if name not in COSTS and larger_is_better else "minimize" for name in objectives]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler(config.sampler, seed, workers=config.jobs)
        pruner = optuna.pruners.NopPruner() if multi else make_pruner(config.pruner, config.max_epochs)
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                    pruner=pruner, directions=directions)
    if multi and study.metric_names is None:
        study.set_metric_names(list(objectives))
    return study


def curve_pruning(config: SearchConfig, study: optuna.Study, storage: optuna.storages.BaseStorage,
                  larger_is_better: bool) -> CurvePruning | None:
    """The pruning of a multi-objective study (on its metric's curve, by the pruner asked for); None otherwise."""
    if len(study.directions) == 1 or config.pruner == "none":
        return None
    return CurvePruning(storage, study.study_name, make_pruner(config.pruner, config.max_epochs), larger_is_better)


def worker_seed(seed: int, existing: int, worker: int) -> int:
    """The sampler seed of ``worker`` when the study holds ``existing`` trials: a resumed search does not
    redraw its first candidates, and no two workers draw alike."""
    return trial_seed(seed, existing) if worker == 0 else int(np.random.SeedSequence([seed, existing, worker]).generate_state(1)[0])


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
              f"with no heartbeat (from a crashed run?); rerun to go on", file=out)
    elif status == "done" and finished < config.trials:
        status = "timeout"
        print(f"stopped by --timeout after {finished} of {config.trials} finished trials; rerun to go on", file=out)
    print_summary(trials, larger_is_better, study.study_name, url, out, objectives=tuple(study.metric_names or ()),
                  directions=[d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions])
    return SearchOutcome(status, study.study_name, url, finished, config.trials)


__all__ = ["OBJECTIVES", "PRUNERS", "SAMPLERS", "SearchConfig", "SearchOutcome", "StudyError", "check_resume",
           "default_study_name", "make_pruner", "make_sampler", "open_storage", "run_search", "trial_seed"]
