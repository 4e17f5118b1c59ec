"""A seconds-long run of the efficiency benchmark, and the best-so-far curves it draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import run_suite
from benchmarks.curves import band, best_so_far
from benchmarks.efficiency import METHODS, TASKS


pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_efficiency_suite_writes_table_curves_and_plot(tmp_path):
    table = run_suite("efficiency", tmp_path, device="cpu", quick=True)
    written = pd.read_csv(tmp_path / "efficiency.csv")
    assert list(written["task"]) == list(TASKS) and len(table) == len(TASKS)
    for column in [f"best {m}" for m in METHODS]:
        assert written[column].between(0, 1).all()
    reached = written["reached"] != "0/1 seeds"
    assert (written.loc[reached, "trials_to_random_best"].between(1, 3)).all()
    assert (written.loc[reached, "seconds_to_random_best"] > 0).all()
    trials = pd.read_csv(tmp_path / "efficiency_trials.csv")
    assert set(trials["method"]) == set(METHODS)
    for _, run in trials.groupby(["task", "method", "seed"]):
        assert len(run) == 3 and list(run["trial"]) == [1, 2, 3]
        assert run["best"].dropna().is_monotonic_increasing and run["seconds"].is_monotonic_increasing
    assert (tmp_path / "efficiency.png").stat().st_size > 10_000


def test_band_spans_the_seeds_and_never_goes_down():
    frames = [best_so_far(pd.DataFrame({"trial": [1, 2, 3], "best_val": values, "seconds": [1.0, 2.0, 3.0]}))
              for values in ([0.5, np.nan, 0.7], [0.6, 0.4, 0.65], [0.2, 0.9, 0.1])]
    curve = band(frames, "trial")
    assert list(curve["trial"]) == [1, 2, 3]
    assert list(curve["median"]) == [0.5, 0.6, 0.7] and list(curve["low"]) == [0.2, 0.5, 0.65]
    assert list(curve["high"]) == [0.6, 0.9, 0.9]
    timed = band(frames, "seconds")
    assert timed["median"].is_monotonic_increasing and (timed["low"] <= timed["high"]).all()
