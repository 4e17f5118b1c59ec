"""A seconds-long run of the speed benchmark: both searches run, the times and their ratio agree, files are written."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks import run_suite
from benchmarks.curves import Reached
from benchmarks.speed import QUICK_TARGET, compare


pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_speed_suite_writes_table_trials_and_plot(tmp_path):
    table = run_suite("speed", tmp_path, device="cpu", quick=True)
    written = pd.read_csv(tmp_path / "speed.csv", dtype={"seed": str})
    assert list(written["seed"]) == ["0", "all"] and len(table) == 2
    assert (written["target"] == QUICK_TARGET).all()
    seed = written.iloc[0]
    for method in ("tool", "baseline"):
        assert 0 < seed[f"{method}_s"] and 0 <= seed[f"{method}_best"] <= 1
        assert seed[f"{method}_reached"] == (seed[f"{method}_best"] >= QUICK_TARGET)
        if not seed[f"{method}_reached"]:
            assert seed[f"{method}_s"] == seed["budget_s"]  # the budget stands in as a lower bound
    if seed["tool_reached"] or seed["baseline_reached"]:
        assert math.isclose(seed["speedup"], seed["baseline_s"] / seed["tool_s"])
    trials = pd.read_csv(tmp_path / "speed_trials.csv")
    assert set(trials["method"]) == {"tool", "baseline"}
    for _, run in trials.groupby("method"):
        assert run["best"].dropna().is_monotonic_increasing and run["seconds"].is_monotonic_increasing
    baseline = trials[trials["method"] == "baseline"]
    assert (baseline["state"] == "COMPLETE").all() and baseline["best_val"].between(0, 1).all()
    assert (tmp_path / "speed.png").stat().st_size > 10_000


def test_a_run_that_misses_the_target_makes_the_ratio_a_bound():
    missed = compare(Reached(3, 10.0), Reached(None, None), budget_s=60.0)
    assert (missed["baseline_s"], missed["speedup"]) == (60.0, 6.0)
    assert missed["speedup_is"] == "lower bound: baseline not reached"
    assert compare(Reached(None, None), Reached(2, 30.0), 60.0)["speedup_is"].startswith("upper bound")
    assert math.isnan(compare(Reached(None, None), Reached(None, None), 60.0)["speedup"])
