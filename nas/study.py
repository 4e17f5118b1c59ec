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
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState

from nas.artifacts import keep_if_best
from nas.checkpoint import checkpoint_path, load_checkpoint, remove_checkpoints, save_checkpoint
from nas.duplicates import copy_result, find_original
from nas.failures import FailureLimit, failing_message, record_failure
from nas.interrupt import InterruptGuard
from nas.measure import count_flops, count_parameters, measure_latency
from nas.model import build_model
from nas.progress import FINISHED, Progress, print_summary
from nas.sampler import LazyGroupTPESampler
from nas.space import SearchSpace, load_space
from nas.tasks import load_task
from nas.train import FitResult, Trainer, maximize
from nas.workers import assign_devices, run_workers

SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("hyperband", "median", "none")
WAIT_SECONDS = 1.0  # between looks at the storage while other workers finish the last trials
HEARTBEAT_SECONDS = 10  # a trial with no heartbeat for 3 of these is stale: its worker died
MAX_RETRIES = 3


class SurplusTrial(Exception):
    """A trial claimed after the study's total was reached (by finished trials and running ones ahead of it)."""


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


def trial_seed(seed: int, number: int) -> int:
    """The training seed of trial ``number``: fixed by the search seed, different for every trial."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


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


def open_storage(url: str, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage that several processes can share.

    SQLite: the folder is made first, writes wait up to 30 s for the lock, the
    journal is WAL and every transaction begins IMMEDIATE (a deferred one that
    later writes fails at once with "database is locked" instead of waiting).
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            beats: dict[str, Any] = {}
            if heartbeat:
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
                beats = {"heartbeat_interval": HEARTBEAT_SECONDS, "grace_period": 3 * HEARTBEAT_SECONDS,
                         "heartbeat_stale_trial_callback": retry}
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beats)
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


def study_attrs(task_name: str, seed: int, metric: str, space: SearchSpace) -> dict[str, Any]:
    return {"task": task_name, "seed": seed, "metric": metric, "space": space.name,
            "space_hash": space.hash(), "space_content": space.to_dict()}


def check_resume(name: str, stored: dict[str, Any], wanted: dict[str, Any], allow_space_change: bool) -> None:
    """Refuse to resume a study with another task, seed or space; the message says what to do instead."""
    if "task" not in stored:
        raise StudyError(f"study {name!r} was not made by attention-nas (it records no task); choose another --study")
    for key, flag in (("task", "--task"), ("seed", "--seed")):
        if stored[key] != wanted[key]:
            raise StudyError(f"study {name!r} was made with {key}={stored[key]!r}, not {wanted[key]!r}; rerun with "
                             f"{flag} {stored[key]} to resume it, or give --study a new name")
    if stored["space_hash"] != wanted["space_hash"] and not allow_space_change:
        raise StudyError(f"study {name!r} was made with search space {stored['space']!r} (hash {stored['space_hash']}), "
                         f"which differs from {wanted['space']!r} (hash {wanted['space_hash']}); resume with the original "
                         f"space, give --study a new name, or pass --allow-space-change")


class Objective:
    """Samples, builds, measures and trains one candidate, recording it all as trial user attributes.

    ``last_result`` keeps the latest :class:`FitResult` (its ``best_state``
    included) for callers that save weights.
    """

    def __init__(self, space: SearchSpace, trainer: Trainer, config: SearchConfig, guard: InterruptGuard):
        self.space, self.trainer, self.config, self.guard = space, trainer, config, guard
        self.last_result: FitResult | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        if is_surplus(trial.study, trial.number, self.config.trials):
            trial.set_user_attr("reason", "surplus")
            raise SurplusTrial(f"trial {trial.number} is beyond the {self.config.trials} trials asked for")
        spec, train = self.space.sample(trial, self.trainer.input_spec)
        seed = trial_seed(self.config.seed, trial.number)
        train = replace(train, max_epochs=self.config.max_epochs, time_limit=self.config.trial_timeout, seed=seed)
        for key, value in {"arch": spec.to_json(), "summary": spec.summary(), "arch_hash": spec.hash(),
                           "train_config": asdict(train), "seed": seed, "device": str(self.trainer.device)}.items():
            trial.set_user_attr(key, value)
        original = find_original(trial.study, spec.hash(), asdict(train))
        if original is not None:  # trained already: take its result instead of training again
            copy_result(trial, original)
            if original.state == TrialState.PRUNED:
                raise optuna.TrialPruned(f"copy of pruned trial {original.number}")
            return original.value

        def report(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        checkpoint = checkpoint_path(self.config.results_dir, trial.study.study_name, trial.number)
        resume, previous = self._resume(trial)
        try:
            with self.guard.interruptible():
                model = build_model(spec, self.trainer.input_spec, seed=seed)
                cost = self._measure(model)
                result = self.trainer.fit(model, train, on_epoch=report, resume=resume,
                                          on_checkpoint=lambda state: save_checkpoint(checkpoint, state))
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            raise
        except Exception as err:  # e.g. out of memory: this candidate fails, the search goes on
            record_failure(trial, err)
            raise
        finally:  # a killed worker never gets here: its checkpoint stays for the retry
            remove_checkpoints(checkpoint, *previous)
        self.last_result = result
        record = {**cost, "val_history": result.val_history, "best_val": result.best_metric,
                  "best_epoch": result.best_epoch, "test": result.test_metric, "epochs": result.epochs,
                  "train_seconds": result.train_seconds}
        if result.stop_reason:
            record["reason"] = result.stop_reason
        for key, value in record.items():
            trial.set_user_attr(key, value)
        if result.pruned:
            raise optuna.TrialPruned(result.stop_reason)
        keep_if_best(trial, result.best_state, result.best_metric, results_dir=self.config.results_dir)
        return result.best_metric

    def _resume(self, trial: optuna.Trial) -> tuple[dict | None, list[Path]]:
        """For a retry of a trial whose worker died: the dead trial's last checkpoint (None if it has none or it
        is corrupt) and its path, with the learning curve so far reported again to the pruner."""
        history = trial.study._storage.get_trial(trial._trial_id).system_attrs.get("retry_history", [])
        if not history:
            return None, []
        previous = checkpoint_path(self.config.results_dir, trial.study.study_name, history[-1])
        state = load_checkpoint(previous)
        trial.set_user_attr("retry_of", history[-1])
        trial.set_user_attr("resumed_from_epoch", 0 if state is None else int(state["epoch"]))
        for epoch, value in enumerate([] if state is None else state["val_history"], start=1):
            trial.report(value, epoch)
        return state, [previous]

    def _measure(self, model) -> dict[str, Any]:
        """Parameters, forward FLOPs and latency for one sample (batch of 1) on the search's device."""
        val = self.trainer.val
        inputs = (val.x[:1], None if val.mask is None else val.mask[:1])
        model.to(self.trainer.device)
        with self.trainer.autocast():
            latency = measure_latency(model, *inputs, repeats=5, warmup=1)
        return {"params": count_parameters(model), "flops": count_flops(model, *inputs), "latency_ms": 1000 * latency}


def is_surplus(study: optuna.Study, number: int, total: int) -> bool:
    """Whether trial ``number`` would overshoot ``total``: finished trials plus running ones ahead of it reach it."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(t.state in FINISHED or t.number < number for t in trials) >= total


def _stop_when_claimed(total: int):
    """Optuna callback: stop once finished and running trials reach ``total``, so no surplus trial is claimed
    in the first place (the objective's check stays the rule)."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        claimed = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if trial.user_attrs.get("reason") == "surplus" or len(claimed) >= total:
            study.stop()

    return callback


def run_search(config: SearchConfig, out: IO[str] | None = None) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; everything is checked before the study is touched."""
    out = out or sys.stdout
    space = load_space(config.space)
    devices = assign_devices(config.devices, config.jobs, config.device)
    task = load_task(config.task, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    name = config.study or default_study_name(task.name, space.name)
    url = config.storage or f"sqlite:///{Path(config.results_dir) / name}.db"
    storage = open_storage(url, heartbeat=True)
    wanted = study_attrs(task.name, config.seed, task.metric, space)
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
    study = load_search_study(config, name, storage, larger_is_better, worker_seed(config.seed, len(existing), 0))
    for key, value in wanted.items():
        if stored is None or stored.get(key) != value:
            study.set_user_attr(key, value)
    where = devices[0] if config.jobs == 1 else f"{config.jobs} workers on {', '.join(sorted(set(devices)))}"
    print(f"study {name!r} in {url}: {finished} of {config.trials} trials finished; task {task.name} "
          f"({task.metric}), space {space.name} ({space.hash()}), device {where}, "
          f"sampler {config.sampler}, pruner {config.pruner}, max {config.max_epochs} epochs", file=out)
    if config.jobs == 1:
        status = run_trials(study, space, Trainer(task, devices[0]), config, existing, out)
    else:
        with InterruptGuard():  # Ctrl-C reaches every worker; each stops after its trial in hand
            status = run_workers(config, name, url, devices, len(existing), out)
    return _finish(study, config, status, larger_is_better, url, out)


def load_search_study(config: SearchConfig, name: str, storage: optuna.storages.RDBStorage, larger_is_better: bool,
                      seed: int) -> optuna.Study:
    """The study ``name`` (made if absent) with this search's sampler, seeded by ``seed``, and pruner."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler(config.sampler, seed, workers=config.jobs)
        return optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                   pruner=make_pruner(config.pruner, config.max_epochs),
                                   direction="maximize" if larger_is_better else "minimize")


def worker_seed(seed: int, existing: int, worker: int) -> int:
    """The sampler seed of ``worker`` when the study holds ``existing`` trials: a resumed search does not
    redraw its first candidates, and no two workers draw alike."""
    return trial_seed(seed, existing) if worker == 0 else int(np.random.SeedSequence([seed, existing, worker]).generate_state(1)[0])


def run_trials(study: optuna.Study, space: SearchSpace, trainer: Trainer, config: SearchConfig, existing: list,
               out: IO[str], bar: bool = True) -> str:
    """Run trials in this process until the study holds ``config.trials`` finished ones; returns the status.

    Several processes may run this on one study: a trial claimed beyond the total
    fails as ``surplus`` before training and this process then waits while
    running trials may still reach the total, taking one more if one fails.
    """
    progress = Progress(config.trials, existing, trainer.larger_is_better, config.quiet, out, bar=bar)
    failures = FailureLimit()
    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    status = "done"
    with InterruptGuard() as guard:
        objective = Objective(space, trainer, config, guard)
        callbacks = [optuna.study.MaxTrialsCallback(config.trials, states=FINISHED), progress, failures,
                     guard.stop_if_pending, _stop_when_claimed(config.trials)]
        try:
            while not (guard.pending or failures.tripped) and _wants_more(study, config.trials, deadline):
                left = None if deadline is None else deadline - time.monotonic()
                study.optimize(objective, timeout=left, callbacks=callbacks, catch=(Exception,))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            progress.close()
        if guard.pending:
            status = "interrupted"
    return "failing" if status == "done" and failures.tripped else status


def _wants_more(study: optuna.Study, total: int, deadline: float | None) -> bool:
    """Whether to claim another trial, waiting while running trials may still reach ``total``.

    The wait ends when a running trial ends or, its worker dead, is failed as stale
    (no heartbeat for the grace period); running trials with no heartbeat at all
    (a crashed search of an older version) end it after twice that grace period.
    """
    waited = 0.0
    while deadline is None or time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.state in FINISHED for t in trials) >= total:
            return False
        if len(trials) < total:
            return True
        if waited > 6 * HEARTBEAT_SECONDS:
            return False
        time.sleep(WAIT_SECONDS)
        waited += WAIT_SECONDS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return False


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
    print_summary(trials, larger_is_better, study.study_name, url, out)
    return SearchOutcome(status, study.study_name, url, finished, config.trials)


__all__ = ["PRUNERS", "SAMPLERS", "Objective", "SearchConfig", "SearchOutcome", "StudyError", "check_resume",
           "default_study_name", "make_pruner", "make_sampler", "open_storage", "run_search", "trial_seed"]
