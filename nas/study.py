"""The search: an Optuna study in a storage, an objective per candidate, and resume that users can trust.

``trials`` is the study's total of finished (complete + pruned) trials, so the
same command after a crash or Ctrl-C runs only what is missing. The task, its
seed and the space are stored with the study and a resume with others is refused.

>>> outcome = run_search(SearchConfig(trials=20, space="tiny"))
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.artifacts import keep_if_best
from nas.device import resolve_device
from nas.interrupt import InterruptGuard
from nas.measure import count_flops, count_parameters, measure_latency
from nas.model import build_model
from nas.progress import FINISHED, Progress, print_summary
from nas.sampler import LazyGroupTPESampler
from nas.space import SearchSpace, load_space
from nas.tasks import load_task
from nas.train import FitResult, Trainer

SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("hyperband", "median", "none")
MAX_CONSECUTIVE_FAILURES = 3


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
    max_epochs: int = 12
    timeout: float | None = None  # seconds for the whole search; no trial starts after it
    trial_timeout: float | None = None  # seconds of training per trial
    seed: int = 0
    device: str = "auto"
    allow_space_change: bool = False
    quiet: bool = False
    results_dir: str = "results"

    def __post_init__(self) -> None:
        for name in ("trials", "max_epochs"):
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


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate TPE over groups of parameters that occur together (Optuna's group=True),
        # drawing only the groups a trial uses. One worker: no constant liar, so sampling reads
        # the storage once per trial.
        return LazyGroupTPESampler(seed=seed, constant_liar=False)
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


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage; for SQLite the folder is made first and a busy timeout set."""
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
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as err:  # SQLAlchemy raises many types for bad URLs, drivers and hosts
        raise StudyError(f"cannot open storage {url!r}: {str(err).splitlines()[0]}") from None


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
        spec, train = self.space.sample(trial, self.trainer.input_spec)
        seed = trial_seed(self.config.seed, trial.number)
        train = replace(train, max_epochs=self.config.max_epochs, time_limit=self.config.trial_timeout, seed=seed)
        for key, value in {"arch": spec.to_json(), "summary": spec.summary(), "arch_hash": spec.hash(),
                           "train_config": asdict(train), "seed": seed, "device": str(self.trainer.device)}.items():
            trial.set_user_attr(key, value)

        def report(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        try:
            with self.guard.interruptible():
                model = build_model(spec, self.trainer.input_spec, seed=seed)
                cost = self._measure(model)
                result = self.trainer.fit(model, train, on_epoch=report)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            raise
        except RuntimeError as err:  # e.g. out of memory: this candidate fails, the search goes on
            trial.set_user_attr("reason", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            raise
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

    def _measure(self, model) -> dict[str, Any]:
        """Parameters, forward FLOPs and latency for one sample (batch of 1) on the search's device."""
        val = self.trainer.val
        inputs = (val.x[:1], None if val.mask is None else val.mask[:1])
        model.to(self.trainer.device)
        with self.trainer.autocast():
            latency = measure_latency(model, *inputs, repeats=5, warmup=1)
        return {"params": count_parameters(model), "flops": count_flops(model, *inputs), "latency_ms": 1000 * latency}


class _FailureLimit:
    """Optuna callback: stop when several trials in a row have failed (a broken setup, not a bad candidate)."""

    def __init__(self, limit: int):
        self.limit, self.streak, self.tripped = limit, 0, False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        interrupted = trial.user_attrs.get("reason") == "interrupted"
        self.streak = self.streak + 1 if trial.state == TrialState.FAIL and not interrupted else 0
        if self.streak >= self.limit:
            self.tripped = True
            study.stop()


def run_search(config: SearchConfig, out: IO[str] | None = None) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; everything is checked before the study is touched."""
    out = out or sys.stdout
    space = load_space(config.space)
    device = resolve_device(config.device)
    task = load_task(config.task, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    name = config.study or default_study_name(task.name, space.name)
    url = config.storage or f"sqlite:///{Path(config.results_dir) / name}.db"
    storage = open_storage(url)
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
    trainer = Trainer(task, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Seeded by the trials already there, so a resumed search does not redraw the first candidates.
        sampler = make_sampler(config.sampler, trial_seed(config.seed, len(existing)))
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                    pruner=make_pruner(config.pruner, config.max_epochs),
                                    direction="maximize" if trainer.larger_is_better else "minimize")
        for key, value in wanted.items():
            if stored is None or stored.get(key) != value:
                study.set_user_attr(key, value)
        print(f"study {name!r} in {url}: {finished} of {config.trials} trials finished; task {task.name} "
              f"({task.metric}), space {space.name} ({space.hash()}), device {device}, "
              f"sampler {config.sampler}, pruner {config.pruner}, max {config.max_epochs} epochs", file=out)
        return _optimize(study, space, trainer, config, existing, url, out)


def _optimize(study: optuna.Study, space: SearchSpace, trainer: Trainer, config: SearchConfig,
              existing: list, url: str, out: IO[str]) -> SearchOutcome:
    progress = Progress(config.trials, existing, trainer.larger_is_better, config.quiet, out)
    failures = _FailureLimit(MAX_CONSECUTIVE_FAILURES)
    status = "done"
    with InterruptGuard() as guard:
        objective = Objective(space, trainer, config, guard)
        callbacks = [optuna.study.MaxTrialsCallback(config.trials, states=FINISHED), progress, failures,
                     guard.stop_if_pending]
        try:
            study.optimize(objective, timeout=config.timeout, callbacks=callbacks, catch=(RuntimeError,))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            progress.close()
        if guard.pending:
            status = "interrupted"
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    if status == "done" and failures.tripped:
        status = "failing"
        print(f"stopped: {MAX_CONSECUTIVE_FAILURES} trials in a row failed; last reason: "
              f"{trials[-1].user_attrs.get('reason', 'unknown')}", file=out)
    elif status == "done" and finished < config.trials:
        status = "timeout"
        print(f"stopped by --timeout after {finished} of {config.trials} finished trials; rerun to go on", file=out)
    print_summary(trials, trainer.larger_is_better, study.study_name, url, out)
    return SearchOutcome(status, study.study_name, url, finished, config.trials)


__all__ = ["PRUNERS", "SAMPLERS", "Objective", "SearchConfig", "SearchOutcome", "StudyError", "check_resume",
           "default_study_name", "make_pruner", "make_sampler", "open_storage", "run_search", "trial_seed"]
