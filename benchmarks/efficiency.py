"""Suite ``efficiency``: best validation accuracy against trials and against wall time, per search strategy.

Three strategies run this tool's ``run_search`` on its default space: TPE with
Hyperband pruning (the default), TPE without pruning, and random sampling
without pruning, on each task and seed. Within a seed the three run one after
another, so drifting machine load hits them alike. The table asks the practical
question: how many trials and seconds does TPE + Hyperband need to match the
best that random search finds in its whole budget?
"""

from __future__ import annotations

import io
import math
import tempfile
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from benchmarks.curves import (band, best_so_far, final_best, time_to_target, trial_frame, warm_up,  # noqa: E402
                                   write_outputs)
from nas.training.device import resolve_device  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402

METHODS = {"TPE + Hyperband": ("tpe", "hyperband"), "TPE, no pruning": ("tpe", "none"),
           "random, no pruning": ("random", "none")}
TASKS = ("digits", "ucr:JapaneseVowels")
# 18 searches (2 tasks x 3 seeds x 3 strategies), each capped in wall time so that the whole run stays near 15
# minutes on a 2-core machine; a strategy that prunes nothing may then stop before its 30th trial.
TRIALS, SEEDS, MAX_EPOCHS, MINUTES = 30, 3, 6, 0.75
QUICK = {"space": "tiny", "trials": 3, "seeds": 1, "max_epochs": 2}


def run_method(task: str, method: str, seed: int, trials: int, max_epochs: int, space: str, budget_s: float,
               device: str, folder: Path) -> pd.DataFrame:
    """One search of strategy ``method``; its trials as a best-so-far frame."""
    sampler, pruner = METHODS[method]
    start = datetime.now()
    study_name = f"{task}-{sampler}-{pruner}-seed{seed}".replace(":", "_")
    outcome = run_search(SearchConfig(trials=trials, task=task, space=space, sampler=sampler, pruner=pruner,
                                      max_epochs=max_epochs, timeout=budget_s, seed=seed, device=device, quiet=True,
                                      results_dir=str(folder), study=study_name), out=io.StringIO())
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    return best_so_far(trial_frame(study.get_trials(), start))


def _median(values: list[float]) -> float:
    """Median where a search that never got there counts as infinitely late; NaN if the median did not."""
    value = float(np.median(values))
    return value if math.isfinite(value) else math.nan


def summarise(task: str, runs: dict[tuple[str, int], pd.DataFrame], seeds: int) -> dict:
    """One task's row: medians over seeds of each strategy's final best, and of the trials and seconds
    TPE + Hyperband took to reach random search's final best of the same seed."""
    row: dict = {"task": task, "seeds": seeds}
    for method in METHODS:
        row[f"best {method}"] = float(np.median([final_best(runs[method, s]) for s in range(seeds)]))
    trials, seconds = [], []
    for seed in range(seeds):
        reached = time_to_target(runs["TPE + Hyperband", seed], final_best(runs["random, no pruning", seed]))
        trials.append(math.inf if reached.trials is None else reached.trials)
        seconds.append(math.inf if reached.seconds is None else reached.seconds)
    row["trials_to_random_best"] = _median(trials)
    row["seconds_to_random_best"] = _median(seconds)
    row["random_trials"] = float(np.median([len(runs["random, no pruning", s]) for s in range(seeds)]))
    row["random_seconds"] = float(np.median([runs["random, no pruning", s]["seconds"].max() for s in range(seeds)]))
    row["reached"] = f"{sum(map(math.isfinite, trials))}/{seeds} seeds"
    return row


@register_suite("efficiency")
def efficiency_suite(out_dir: Path, device: str = "auto", quick: bool = False, trials: int | None = None,
                     seeds: int | None = None, minutes: float | None = None,
                     tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Best-so-far curves of three strategies per task; writes efficiency.csv (one row per task),
    efficiency_trials.csv (every trial of every search) and efficiency.png.

    ``trials_to_random_best`` / ``seconds_to_random_best`` are NaN where TPE +
    Hyperband did not reach random search's best in most seeds (``reached`` says in how many it did).
    """
    device = str(resolve_device(device))
    space = QUICK["space"] if quick else "default"
    trials = trials or (QUICK["trials"] if quick else TRIALS)
    seeds = seeds or (QUICK["seeds"] if quick else SEEDS)
    max_epochs = QUICK["max_epochs"] if quick else MAX_EPOCHS
    budget_s = 60 * (minutes or MINUTES)
    rows, curves = [], []
    with tempfile.TemporaryDirectory(prefix="efficiency-") as folder:  # one folder: the data cache is shared
        for task in tasks or TASKS:
            warm_up(task, device, Path(folder))
            runs = {(m, s): run_method(task, m, s, trials, max_epochs, space, budget_s, device, Path(folder))
                    for s in range(seeds) for m in METHODS}
            curves += [frame.assign(task=task, method=m, seed=s) for (m, s), frame in runs.items()]
            rows.append(summarise(task, runs, seeds))
    table = pd.DataFrame(rows).assign(trials=trials, minutes_per_search=budget_s / 60, max_epochs=max_epochs,
                                      space=space, device=device, machine=machine(device))
    write_outputs(out_dir, "efficiency", table, pd.concat(curves, ignore_index=True), _plot)
    return table


def _plot(trials: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    tasks = list(table["task"])
    fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 3.6 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        for ax, x, label in zip(row, ("trial", "seconds"), ("trials finished", "wall time (s)")):
            for i, method in enumerate(METHODS):
                runs = trials[(trials["task"] == task) & (trials["method"] == method)]
                curve = band([run for _, run in runs.groupby("seed")], x)
                ax.plot(curve[x], curve["median"], drawstyle="steps-post", color=f"C{i}", label=method)
                ax.fill_between(curve[x], curve["low"], curve["high"], step="post", color=f"C{i}", alpha=0.2)
            ax.set(xlabel=label, ylabel="best validation accuracy", title=f"{task}: against {label}")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=8, loc="lower right")
    first = table.iloc[0]
    fig.suptitle(f"Search efficiency, median and min-max over {first['seeds']} seeds, {first['trials']} trials, "
                 f"{first['max_epochs']} epochs, {first['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
