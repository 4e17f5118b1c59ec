"""Suite ``workers``: trials per minute with 1, 2 and 4 worker processes on SQLite and PostgreSQL, and the
share of a trial's time spent inside storage calls.

Throughput rows run :func:`nas.study.run_search` with ``SearchConfig(jobs=N)``
as a user would, and report two rates: end to end (the command's wall time,
spawning and the workers' torch import and task load included) and steady
state (finished trials per minute while every worker was busy, from the
storage's own timestamps; see :func:`steady_rate`). Trials use no pruner, so
every trial trains the same number of epochs, and the searches of one seed train
the same queued candidates (:func:`enqueue_candidates`), so their rates compare
like with like; the steady speed-up over one worker weighs each trial by the time
one worker took for it (:func:`steady_speedup`). Every worker pays torch's one-time
compiler import when its :class:`nas.train.Trainer` is made, before its first
trial; inside that trial it cost 1.3 s, and the steady window, which opens as the
last worker starts a trial, took it in for every spawned worker.

Each spawned worker runs ``cores // jobs`` torch threads (``nas.workers.cpu_threads``);
before that rule, every worker took one thread per core and 2 workers on 2 cores
ran 8x slower than one.

Overhead rows run one worker in this process (``load_search_study`` and
``run_trials``, as ``run_search`` does) with every public method of the storage
the study holds timed on the instance; nested calls count once, and the
heartbeat thread's calls (off the trial's path) not at all. On PostgreSQL the
tiny space's rows run again with every answer of the server held a millisecond
(``postgresql-distant``, through :class:`nas.benchmarks.distance.DistantServer`;
the rows hold the round trip a ``SELECT 1`` measured), as a worker on another
machine has it, and count the round trips per trial.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import statistics
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

from nas.benchmarks import register_suite  # noqa: E402
from nas.benchmarks import pgserver  # noqa: E402
from nas.benchmarks.attention import machine  # noqa: E402
from nas.benchmarks.distance import DistantServer  # noqa: E402
from nas.device import resolve_device  # noqa: E402
from nas.progress import FINISHED  # noqa: E402
from nas.space import load_space  # noqa: E402
from nas.storage import SearchStorage  # noqa: E402
from nas.study import SearchConfig, load_search_study, open_storage, run_search, run_trials, study_attrs  # noqa: E402
from nas.tasks import load_task  # noqa: E402
from nas.train import Trainer, maximize  # noqa: E402
from nas.workers import cpu_threads  # noqa: E402

TASK, SPACE = "digits", "tiny"
STORAGES = ("sqlite", "postgresql")
DISTANT_ROUND_TRIP = 0.001  # s each answer is held: a server in another zone; this machine's own answers in 0.1 ms


@dataclass(frozen=True)
class Budget:
    """What one run of the suite measures."""

    storages: tuple[str, ...]
    jobs: tuple[int, ...]  # 1 first: the others' speed-ups are against it
    overhead_pruners: tuple[str, ...]
    overhead_spaces: tuple[str, ...]  # the tiny space's trials last about 0.5 s, the default space's about 2 s
    trials: int
    epochs: int


FULL = Budget(STORAGES, (1, 2, 4), ("none", "hyperband"), (SPACE, "default"), trials=24, epochs=8)
QUICK = Budget(("sqlite",), (1, 2), ("none",), (SPACE,), trials=4, epochs=1)


class StorageClock:
    """Times every public method of ``storage`` by shadowing it on the instance (the study calls
    ``self._storage.<method>``), the stale-trial query Optuna makes before each trial, and what the search
    calls on a :class:`SearchStorage` directly (flushing batched writes, counting trials), summing the
    outermost calls made on the thread that built the clock."""

    PRIVATE = ("_get_stale_trial_ids",)

    def __init__(self, storage: Any):
        self.seconds, self.calls = 0.0, 0
        self.by_method: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self._thread, self._depth = threading.get_ident(), 0
        for name in dir(type(storage)):
            if (not name.startswith("_") or name in self.PRIVATE) \
                    and inspect.isfunction(inspect.getattr_static(type(storage), name)):
                setattr(storage, name, self._timed(getattr(storage, name)))
        backend = getattr(storage, "_backend", None)  # Optuna's cache over the RDB storage
        if isinstance(backend, SearchStorage):  # what the search calls on it directly
            backend.flush = self._timed(backend.flush)
            backend.count_trials = self._timed(backend.count_trials)

    def per_trial(self, trials: int) -> str:
        """``get_all_trials 2.0x 8.1ms, ...``: calls and milliseconds per trial by method, most time first."""
        return ", ".join(f"{name} {self.count[name] / trials:.1f}x {1000 * seconds / trials:.1f}ms"
                         for name, seconds in self.by_method.most_common() if seconds)

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth or threading.get_ident() != self._thread:
                return method(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds += elapsed
                self.by_method[method.__name__] += elapsed
                self.count[method.__name__] += 1
                self.calls += 1
                self._depth -= 1

        return timed


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
    study = load_search_study(config, config.study, storage, maximize(task.metric), seed=config.seed)
    attrs = {**study_attrs(task.name, config.seed, task.metric, space), "space_origin": space.to_dict()}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for params in candidates:
        study.enqueue_trial(params)
    storage.engine.dispose()


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
                 pruner: str, space: str = SPACE, distant: DistantServer | None = None) -> dict[str, Any]:
    """One worker in this process with its storage calls timed: seconds in storage over seconds of trials; with
    the trials' round trips to the server, when it is reached through ``distant``."""
    study = f"overhead-{storage}-{space}-{pruner}"
    config = _config(budget, device, folder, study, url, 1, pruner, space)
    task = load_task(TASK, seed=0, cache_dir=folder / "cache")
    trainer = Trainer(task, device)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        opened = open_storage(url or f"sqlite:///{folder / study}.db", heartbeat=True)
        search = load_search_study(config, study, opened, trainer.larger_is_better, seed=0)
    clock = StorageClock(search._storage)  # what the study calls: Optuna's cache over the RDB storage
    start, trips = time.perf_counter(), distant.round_trips if distant else 0
    status = run_trials(search, load_space(space), trainer, config, [], io.StringIO(), bar=False)
    wall = time.perf_counter() - start
    trips = distant.round_trips - trips if distant else float("nan")
    trials = search.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    return {"measure": "overhead", "storage": storage, "space": space, "seed": 0, "jobs": 1, "pruner": pruner,
            "threads_per_worker": torch.get_num_threads(), "status": status, "finished": finished, "wall_s": wall,
            "trials_per_min_wall": 60 * finished / wall, "trials_per_min_steady": steady_rate(trials),
            "storage_calls": clock.calls, "storage_s": clock.seconds,
            "storage_ms_per_trial": 1000 * clock.seconds / finished, "storage_share": clock.seconds / wall,
            "storage_by_call": clock.per_trial(finished), "round_trips_per_trial": trips / finished}


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
        if storage == "postgresql":
            rows += distant_rows(budget, device, folder, url)
    return rows


def distant_rows(budget: Budget, device: str, folder: Path, url: str) -> list[dict[str, Any]]:
    """The tiny space's overhead rows with the server :data:`DISTANT_ROUND_TRIP` away, as a worker on another
    machine has it; their round trips counted."""
    with DistantServer(sqlalchemy.engine.make_url(url).port, round_trip=DISTANT_ROUND_TRIP) as distant:
        seen = {"direct": read_seconds(url), "distant": read_seconds(distant.url(url))}
        rows = [overhead_row(budget, device, folder, "postgresql-distant", distant.url(url), pruner, SPACE, distant)
                for pruner in budget.overhead_pruners]
    return [{**row, "read_ms_direct": 1000 * seen["direct"], "read_ms_distant": 1000 * seen["distant"]} for row in rows]


def read_seconds(url: str, reads: int = 50) -> float:
    """The median time of reading ``SELECT 1`` from ``url``: a round trip as a client sees it."""
    engine = sqlalchemy.create_engine(url)
    times = []
    with engine.connect() as connection:
        for _ in range(reads):
            start = time.perf_counter()
            connection.exec_driver_sql("SELECT 1").scalar()
            times.append(time.perf_counter() - start)
    engine.dispose()
    return statistics.median(times)


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
    names = ["\n".join([*r.storage.split("-"), r.space, r.pruner]) for r in costs.itertuples()]
    right.bar(names, 100 * costs["storage_share"], color="tab:red")
    right.tick_params(axis="x", labelsize=7)
    right.axhline(2, color="grey", linestyle="--", label="2% target")
    right.set(ylabel="% of trial time in storage calls", title="Storage overhead, 1 worker")
    right.legend()
    fig.suptitle(f"{SPACE} space (overhead: as labelled) on {table['task'].iloc[0]}, {table['machine'].iloc[0]}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
