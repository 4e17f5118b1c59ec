"""Search progress as data: a finished study's trials as a frame, best-so-far curves, time to a target.

Any Optuna study whose trials carry the user attribute ``best_val`` can be read,
so the search of this tool and a hand-written baseline are measured by the same
code. Only COMPLETE trials improve the best, as in ``study.best_value``: a
pruned trial's weights are not kept, so its accuracy is not something the search
hands back. Pruned and failed trials still count as trials and take time.

>>> frame = best_so_far(trial_frame(study.get_trials(), start))
>>> time_to_target(frame, 0.97)
"""

from __future__ import annotations

import io
import math
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from nas.search.config import SearchConfig
from nas.search.run import run_search

COLUMNS = ["trial", "number", "state", "best_val", "seconds"]


class Reached(NamedTuple):
    """When a search first reached a target: the trial count and seconds since its start; None if never."""

    trials: int | None
    seconds: float | None


def trial_frame(trials: Iterable[optuna.trial.FrozenTrial], start: datetime) -> pd.DataFrame:
    """One row per ended trial in the order they ended: ``trial`` (1-based count), Optuna ``number``, ``state``,
    ``best_val`` (NaN unless COMPLETE) and ``seconds`` of wall time from ``start`` to the trial's end.

    ``start`` is the moment the search was started (``datetime.now()``, as Optuna's
    own stamps), so loading data and opening the study count against it.
    Trials still running, or refused as surplus by a parallel search, are left out.
    """
    rows = []
    for t in trials:
        if t.datetime_complete is None or t.user_attrs.get("reason") == "surplus":
            continue
        complete = t.state == TrialState.COMPLETE
        rows.append({"number": t.number, "state": t.state.name,
                     "best_val": float(t.user_attrs["best_val"]) if complete else math.nan,
                     "seconds": (t.datetime_complete - start).total_seconds()})
    frame = pd.DataFrame(rows, columns=COLUMNS[1:]).sort_values("seconds", kind="stable", ignore_index=True)
    frame.insert(0, "trial", np.arange(1, len(frame) + 1))
    return frame


def best_so_far(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a column ``best``: the highest ``best_val`` of any trial up to this row (NaN before the
    first complete trial), so it never goes down."""
    return frame.assign(best=frame["best_val"].cummax().ffill())  # cummax leaves NaN rows NaN


def time_to_target(frame: pd.DataFrame, target: float) -> Reached:
    """The first row of a :func:`best_so_far` frame whose ``best`` reaches ``target``."""
    hits = frame.index[frame["best"] >= target]
    if len(hits) == 0:
        return Reached(None, None)
    row = frame.loc[hits[0]]
    return Reached(int(row["trial"]), float(row["seconds"]))


def final_best(frame: pd.DataFrame) -> float:
    """The best a whole search reached (NaN if no trial completed)."""
    return float(frame["best"].max()) if len(frame) else math.nan


def step_values(frame: pd.DataFrame, x: str, grid: np.ndarray) -> np.ndarray:
    """The ``best`` curve of one search read at each ``grid`` point of column ``x`` (``trial`` or ``seconds``):
    the value after the last trial at or before the point; NaN before the first complete trial and past the
    search's last trial, where the search says nothing."""
    xs, best = frame[x].to_numpy(dtype=float), frame["best"].to_numpy(dtype=float)
    at = np.searchsorted(xs, grid, side="right") - 1
    values = np.where(at >= 0, best[np.clip(at, 0, None)], np.nan) if len(xs) else np.full(len(grid), np.nan)
    return np.where(grid <= (xs[-1] if len(xs) else -np.inf), values, np.nan)


def band(frames: list[pd.DataFrame], x: str, points: int = 200) -> pd.DataFrame:
    """Median, min and max of the best-so-far curves of several searches (one per seed) against ``x``.

    Only grid points where every search has a value are kept, so the band is
    always over all seeds rather than over whichever seeds are still running.
    """
    ends = [f[x].max() for f in frames if len(f)]
    if len(ends) < len(frames) or not frames:
        return pd.DataFrame(columns=[x, "median", "low", "high"])
    grid = np.arange(1, min(ends) + 1, dtype=float) if x == "trial" else np.linspace(0, min(ends), points)
    values = np.vstack([step_values(f, x, grid) for f in frames])
    keep = ~np.isnan(values).any(axis=0)
    values, grid = values[:, keep], grid[keep]
    return pd.DataFrame({x: grid, "median": np.median(values, axis=0), "low": values.min(axis=0),
                         "high": values.max(axis=0)})


def warm_up(task: str, device: str, folder: Path) -> None:
    """One throwaway one-trial search on ``task``: the first search in a process pays seconds of one-off costs
    (lazy imports, thread pools, the data cache) that would otherwise count against whichever method runs first."""
    run_search(SearchConfig(trials=1, task=task, space="tiny", max_epochs=1, device=device, quiet=True,
                            results_dir=str(folder), study=f"warm-up-{task}".replace(":", "_")), out=io.StringIO())


def write_outputs(out_dir: Path, name: str, table: pd.DataFrame, trials: pd.DataFrame,
                  plot: Callable[[pd.DataFrame, pd.DataFrame, Path], None]) -> None:
    """``<name>.csv`` (the summary), ``<name>_trials.csv`` (every trial of every search) and ``<name>.png``."""
    table.to_csv(out_dir / f"{name}.csv", index=False)
    trials.to_csv(out_dir / f"{name}_trials.csv", index=False)
    plot(trials, table, out_dir / f"{name}.png")


__all__ = ["Reached", "band", "best_so_far", "final_best", "step_values", "time_to_target", "trial_frame", "warm_up",
           "write_outputs"]
