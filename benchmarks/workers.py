"""Suite ``workers``: trials per minute with 1, 2 and 4 worker processes on SQLite and PostgreSQL, and the
share of a trial's time spent inside storage calls.

Throughput rows run :func:`nas.search.run.run_search` with ``SearchConfig(jobs=N)``
as a user would, and report two rates: end to end (the command's wall time,
spawning and the workers' torch import and task load included) and steady
state (finished trials per minute while every worker was busy, from the
storage's own timestamps; see :func:`steady_rate`). Trials use no pruner, so
every trial trains the same number of epochs, and the searches of one seed train
the same queued candidates (:func:`enqueue_candidates`), so their rates compare
like with like; the steady speed-up over one worker weighs each trial by the time
one worker took for it (:func:`steady_speedup`). Every worker pays torch's one-time
compiler import when its :class:`nas.training.trainer.Trainer` is made, before its first
trial; inside that trial it cost 1.3 s, and the steady window, which opens as the
last worker starts a trial, took it in for every spawned worker.

Each spawned worker runs ``cores // jobs`` torch threads (``nas.search.workers.cpu_threads``);
before that rule, every worker took one thread per core and 2 workers on 2 cores
ran 8x slower than one.

Overhead rows run one worker in this process (``load_search_study`` and
``run_trials``, as ``run_search`` does) on the stock Optuna storage that
``open_storage`` returns, with every public method of that storage object timed
on the instance: Optuna's in-memory cache in front of it answers some reads
without a call, so what is timed is what reaches the database. Nested calls
count once, and the heartbeat thread's calls (off the trial's path) not at all.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy  # noqa: E402
import torch  # noqa: E402

from benchmarks import register_suite  # noqa: E402
from tests.support import postgres as pgserver  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from nas.training.device import resolve_device  # noqa: E402
from nas.search.progress import FINISHED  # noqa: E402
from nas.search.space import load_space  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.budget import plan_budget  # noqa: E402
from nas.search.study import load_search_study, study_attrs  # noqa: E402
from nas.search.storage import open_storage  # noqa: E402
from nas.search.loop import run_trials  # noqa: E402
from nas.search.run import run_search  # noqa: E402
from nas.data import load_task  # noqa: E402
from nas.training.trainer import Trainer, maximize  # noqa: E402
from nas.search.workers import cpu_threads  # noqa: E402

TASK, SPACE = "digits", "tiny"
STORAGES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Budget:
    """What one run of the suite measures."""

    storages: tuple[str, ...]
    jobs: tuple[int, ...]  # 1 first: the others' speed-ups are against it
    overhead_pruners: tuple[str, ...]
    overhead_spaces: tuple[str, ...]  # short and typical trials: the storage's share of a trial depends on its length
    trials: int
    epochs: int


FULL = Budget(STORAGES, (1, 2, 4), ("none", "hyperband"), (SPACE, "default"), trials=24, epochs=8)
QUICK = Budget(("sqlite",), (1, 2), ("none",), (SPACE,), trials=4, epochs=1)


class StorageClock:
    """Times what ``storage`` does on the thread that built the clock (a trial's path; the heartbeat thread has
    its own): every public method, shadowed on the instance, and every SQL statement run on its ``engine`` (a
    public SQLAlchemy event) outside such a call, which catches what Optuna's cache reaches through the storage's
    non-public methods (creating a trial, reading trials). Nested calls count once; the ORM's work around those
    statements is not counted, so :func:`overhead_row` also reports all time outside training as a bound."""

    SQL = "sql"

    def __init__(self, storage: Any):
        self.seconds, self.calls = 0.0, 0
        self.by_method: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self._thread, self._depth, self._statement_start = threading.get_ident(), 0, 0.0
        for name in dir(type(storage)):
            if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(type(storage), name)):
                setattr(storage, name, self._timed(getattr(storage, name)))
        engine = getattr(storage, "engine", None)
        if isinstance(engine, sqlalchemy.engine.Engine):
            sqlalchemy.event.listen(engine, "before_cursor_execute", self._before_statement)
            sqlalchemy.event.listen(engine, "after_cursor_execute", self._after_statement)

    def per_trial(self, trials: int) -> str:
        """``get_all_trials 2.0x 8.1ms, ...``: calls and milliseconds per trial by method, most time first."""
        return ", ".join(f"{name} {self.count[name] / trials:.1f}x {1000 * seconds / trials:.1f}ms"
                         for name, seconds in self.by_method.most_common() if seconds)

    def _outermost(self) -> bool:
        return not self._depth and threading.get_ident() == self._thread

    def _add(self, name: str, elapsed: float) -> None:
        self.seconds += elapsed
        self.by_method[name] += elapsed
        self.count[name] += 1
        self.calls += 1

    def _before_statement(self, *args: Any) -> None:
        self._statement_start = time.perf_counter() if self._outermost() else 0.0

    def _after_statement(self, *args: Any) -> None:
        if self._statement_start and self._outermost():
            self._add(self.SQL, time.perf_counter() - self._statement_start)
        self._statement_start = 0.0

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self._outermost():
                return method(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                self._add(method.__name__, time.perf_counter() - start)

        return timed


class TrainingClock:
    """Times ``trainer.fit`` (shadowed on the instance): a trial's own work, against which all else is overhead."""

    def __init__(self, trainer: Trainer):
        self.seconds = 0.0
        fit = trainer.fit

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fit(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        trainer.fit = timed  # type: ignore[method-assign]


def steady_window(trials: list[optuna.trial.FrozenTrial], jobs: int = 1) -> tuple[datetime, datetime]:
    """From the first moment ``jobs`` trials ran at once to the last (the whole span of the finished trials
    when they never did).

    Worker 0 is the calling process and trains at once while the spawned workers are still importing
    torch, so the span from the first trial's start would mix in a stretch with fewer workers.
    """
    ended = [t for t in trials if t.datetime_start is not None and t.datetime_complete is not None]
    events = sorted([(t.datetime_start, 1) for t in ended] + [(t.datetime_complete, -1) for t in ended])
    running, start, end = 0, None, None
    for moment, change in events:  # at equal times an end (-1) sorts before a start (+1)
        if running >= jobs and running + change < jobs:
            end = moment
        running += change
        if running >= jobs and start is None:
            start = moment
    if start is None or end is None or end <= start:
        done = [t for t in ended if t.state in FINISHED]
        start, end = min(t.datetime_start for t in done), max(t.datetime_complete for t in done)
    return start, end


def steady_rate(trials: list[optuna.trial.FrozenTrial], jobs: int = 1) -> float:
    """Finished trials per minute in the :func:`steady_window`."""
    start, end = steady_window(trials, jobs)
    finished = sum(t.state in FINISHED and start < t.datetime_complete <= end for t in trials)
    return 60 * finished / (end - start).total_seconds()


def steady_speedup(trials: list[optuna.trial.FrozenTrial], alone: list[optuna.trial.FrozenTrial], jobs: int) -> float:
    """How many times one worker's pace ``jobs`` workers kept in the :func:`steady_window`, by work rather than
    by trials: each trial counts the time the one-worker search of the same queued candidates (``alone``)
    spent on it, pro rata of the part of it inside the window (and of the pauses between that search's trials).

    Counting finished trials instead made the window's mix of cheap and costly candidates, and the trials cut
    by its edges, part of the figure: 2 workers on 2 cores gave 1.56x to 2.34x over seeds.
    """
    single = {t.number: t for t in alone if t.state in FINISHED}
    span = max(t.datetime_complete for t in single.values()) - min(t.datetime_start for t in single.values())
    paced = span / sum((t.datetime_complete - t.datetime_start for t in single.values()), timedelta())
    start, end = steady_window(trials, jobs)
    work = 0.0
    for trial in trials:
        if trial.state not in FINISHED or trial.number not in single:
            continue
        inside = min(end, trial.datetime_complete) - max(start, trial.datetime_start)
        took = single[trial.number].datetime_complete - single[trial.number].datetime_start
        if inside > timedelta():
            work += inside / (trial.datetime_complete - trial.datetime_start) * took.total_seconds() * paced
    return work / (end - start).total_seconds()


def _config(budget: Budget, device: str, folder: Path, study: str, url: str | None, jobs: int,
            pruner: str, space: str = SPACE, seed: int = 0) -> SearchConfig:
    return SearchConfig(trials=budget.trials, task=TASK, space=space, study=study, storage=url, sampler="tpe",
                        pruner=pruner, max_epochs=budget.epochs, seed=seed, device=device, quiet=True,
                        results_dir=str(folder), jobs=jobs)


def enqueue_candidates(config: SearchConfig, seed: int) -> None:
    """Make the search's study and queue ``config.trials`` candidates drawn at random with ``seed``, so the searches
    with 1, 2 and 4 workers of one seed train the same architectures (each worker's own sampler would draw its
    own mix of cheap and costly ones). The search then resumes the study as its own."""
    space, task = load_space(config.space), load_task(TASK, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    candidates = []
    for _ in range(config.trials):
        trial = draws.ask()
        space.sample(trial, task.input_spec)
        candidates.append(trial.params)
    storage = open_storage(config.storage or f"sqlite:///{Path(config.results_dir) / config.study}.db")
    study = load_search_study(config, config.study, storage, maximize(task.metric), seed=config.seed,
                              budget=plan_budget(task, config, space.largest_batch()))
    attrs = {**study_attrs(task.name, config.seed, task.metric, space), "space_origin": space.to_dict()}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for params in candidates:
        study.enqueue_trial(params)
    storage.remove_session()


def throughput_rows(budget: Budget, device: str, folder: Path, storage: str, url: str | None,
                    seed: int) -> list[dict[str, Any]]:
    """The throughput searches of one seed, one worker's first: the others' steady speed-up is against it."""
    rows, alone = [], []
    for jobs in budget.jobs:
        row, trials = throughput_row(budget, device, folder, storage, url, jobs, seed)
        alone = trials if jobs == 1 else alone
        rows.append({**row, "speedup_steady": steady_speedup(trials, alone, jobs)})
    return rows


def throughput_row(budget: Budget, device: str, folder: Path, storage: str, url: str | None,
                   jobs: int, seed: int = 0) -> tuple[dict[str, Any], list[optuna.trial.FrozenTrial]]:
    """One ``run_search`` with ``jobs`` workers, as a user runs it, on the candidates queued for ``seed``; and
    its trials."""
    study = f"throughput-{storage}-{jobs}-{seed}"
    config = _config(budget, device, folder, study, url, jobs, pruner="none", seed=seed)
    enqueue_candidates(config, seed)
    start = time.perf_counter()
    outcome = run_search(config, out=io.StringIO())
    wall = time.perf_counter() - start
    trials = optuna.load_study(study_name=study, storage=outcome.storage).get_trials(deepcopy=False)
    threads = torch.get_num_threads() if jobs == 1 else cpu_threads([device] * jobs)
    row = {"measure": "throughput", "storage": storage, "space": SPACE, "seed": seed, "jobs": jobs, "pruner": "none",
           "threads_per_worker": threads, "status": outcome.status, "finished": outcome.finished, "wall_s": wall,
           "trials_per_min_wall": 60 * outcome.finished / wall, "trials_per_min_steady": steady_rate(trials, jobs)}
    return row, trials


def overhead_row(budget: Budget, device: str, folder: Path, storage: str, url: str | None,
                 pruner: str, space: str = SPACE) -> dict[str, Any]:
    """One worker in this process with its storage calls timed: seconds in storage over seconds of trials."""
    study = f"overhead-{storage}-{space}-{pruner}"
    config = _config(budget, device, folder, study, url, 1, pruner, space)
    task, searched = load_task(TASK, seed=0, cache_dir=folder / "cache"), load_space(space)
    trainer = Trainer(task, device)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    opened = open_storage(url or f"sqlite:///{folder / study}.db")
    search = load_search_study(config, study, opened, trainer.larger_is_better, seed=0,
                               budget=plan_budget(task, config, searched.largest_batch()))
    clock, training = StorageClock(opened), TrainingClock(trainer)
    start = time.perf_counter()
    status = run_trials(search, opened, searched, trainer, config, [], io.StringIO(), bar=False, task=task)
    wall = time.perf_counter() - start
    trials = search.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    return {"measure": "overhead", "storage": storage, "space": space, "seed": 0, "jobs": 1, "pruner": pruner,
            "threads_per_worker": torch.get_num_threads(), "status": status, "finished": finished, "wall_s": wall,
            "trials_per_min_wall": 60 * finished / wall, "trials_per_min_steady": steady_rate(trials),
            "storage_calls": clock.calls, "storage_s": clock.seconds,
            "storage_ms_per_trial": 1000 * clock.seconds / finished, "storage_share": clock.seconds / wall,
            "storage_by_call": clock.per_trial(finished), "outside_training_share": 1 - training.seconds / wall}


def postgres_missing() -> str | None:
    """Why the PostgreSQL rows cannot run here, or None when they can."""
    if importlib.util.find_spec("psycopg") is None:
        return "the psycopg driver is not installed (pip install -e '.[postgres]')"
    if pgserver.find_binary("initdb") is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed (Debian: apt-get install postgresql)"
    return None


@contextlib.contextmanager
def _storage_url(storage: str) -> Iterator[str | None]:
    """None for SQLite (each study its own file in the run's folder); a fresh server's URL for PostgreSQL."""
    if storage == "sqlite":
        yield None
        return
    with pgserver.postgres_server() as url:
        yield url


def storage_rows(budget: Budget, device: str, folder: Path, storage: str, seeds: int) -> list[dict[str, Any]]:
    with _storage_url(storage) as url:
        rows = [row for seed in range(seeds) for row in throughput_rows(budget, device, folder, storage, url, seed)]
        # After the in-process one-worker runs, which pay this process's one-time warm-up as a real search does.
        rows += [overhead_row(budget, device, folder, storage, url, pruner, space)
                 for space in budget.overhead_spaces for pruner in budget.overhead_pruners]
    return rows


@register_suite("workers")
def workers_suite(out_dir: Path, device: str = "auto", quick: bool = False, trials: int | None = None,
                  seeds: int = 1) -> pd.DataFrame:
    """Workers and storages on the tiny space (storage overhead also on the default space); writes workers.csv
    and workers.png.

    ``trials`` is the total per search (default 24, quick 4). ``seeds`` repeats the throughput searches with
    that many search seeds, so the speed-ups come with their spread (on 2 cores one run's rate moves by
    up to 15%). Quick runs SQLite only with 1 and 2 workers.
    """
    device = str(resolve_device(device))
    budget = QUICK if quick else FULL
    if trials is not None:
        budget = replace(budget, trials=trials)
    where = machine(device)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nas-workers-") as folder:
        for storage in budget.storages:
            missing = postgres_missing() if storage == "postgresql" else None
            if missing:
                warnings.warn(f"workers suite: PostgreSQL rows skipped: {missing}", RuntimeWarning, stacklevel=2)
                continue
            rows += storage_rows(budget, device, Path(folder), storage, seeds)
    table = _with_wall_speedup(pd.DataFrame(rows)).assign(trials=budget.trials, epochs=budget.epochs, task=TASK,
                                                     machine=where)
    table.to_csv(out_dir / "workers.csv", index=False)
    _plot(table, out_dir / "workers.png")
    return table


def _with_wall_speedup(table: pd.DataFrame) -> pd.DataFrame:
    """End-to-end trials/min over those of the one-worker throughput row of the same storage and seed."""
    rates = table["measure"] == "throughput"
    single = table[rates & (table["jobs"] == 1)].set_index(["storage", "seed"])
    base = single["trials_per_min_wall"].reindex(pd.MultiIndex.from_frame(table[["storage", "seed"]])).to_numpy()
    return table.assign(speedup_wall=(table["trials_per_min_wall"] / base).where(rates))


def _plot(table: pd.DataFrame, path: Path) -> None:
    runs = table[table["measure"] == "throughput"].groupby(["storage", "jobs", "threads_per_worker"], sort=False)
    rates = runs[["trials_per_min_steady", "trials_per_min_wall"]]
    middle, low, high = rates.median(), rates.min(), rates.max()
    speedups = runs["speedup_steady"].median()
    costs = table[table["measure"] == "overhead"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    labels = [f"{storage}\n{jobs}w x{threads}t\n{speedups[storage, jobs, threads]:.2f}x"
              for storage, jobs, threads in middle.index]
    positions = range(len(middle))
    for shift, kind, label in ((-0.2, "steady", "steady state"), (0.2, "wall", "end to end")):
        column = f"trials_per_min_{kind}"
        spread = [middle[column] - low[column], high[column] - middle[column]]
        left.bar([p + shift for p in positions], middle[column], width=0.4, yerr=spread, capsize=3, label=label)
    left.set_xticks(list(positions), labels=labels, fontsize=8)
    seeds = table["seed"].nunique()
    left.set(ylabel="finished trials per minute",
             title=f"Workers x threads each, {table['trials'].iloc[0]} trials"
                   + (f" (median, min-max of {seeds} seeds)" if seeds > 1 else ""))
    left.legend()
    names = [f"{r.storage}\n{r.space}\n{r.pruner}" for r in costs.itertuples()]
    right.bar(names, 100 * costs["storage_share"], color="tab:red")
    right.tick_params(axis="x", labelsize=7)
    right.axhline(2, color="grey", linestyle="--", label="2% target")
    right.set(ylabel="% of trial time in storage calls", title="Storage overhead, 1 worker")
    right.legend()
    fig.suptitle(f"{SPACE} space (overhead: as labelled) on {table['task'].iloc[0]}, {table['machine'].iloc[0]}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
