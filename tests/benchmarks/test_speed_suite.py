"""The speed suite against its peer: a seconds-long run writes its files, and the comparison (time to the peer's
final best, the ratio, its bound, the test accuracies, the targets) is right on hand-made frames."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import optuna
import pandas as pd

from benchmarks import run_suite
from benchmarks.curves import best_so_far
from benchmarks.speed import METHODS, QUICK_EPOCHS, RATIO_TARGET, _storage, _study, compare, read_run, summarise

TABLE = {"seed", "peer_best", "peer_s", "peer_trials", "tool_s", "tool_trials", "tool_reached", "ratio", "ratio_is",
         "tool_best", "peer_test", "tool_test", "peer_ended", "tool_ended", "ratio_ok", "test_ok", "ratio_min",
         "ratio_max", "peer_test_min", "peer_test_max", "tool_test_min", "tool_test_max", "ratio_ok_seeds",
         "test_ok_seeds", "budget_s", "peer_epochs", "ratio_target", "threads", "device", "machine"}
TRIALS = {"trial", "number", "state", "best_val", "seconds", "test", "best", "method", "seed"}


def run(*trials: tuple[float, float | None, float | None]) -> pd.DataFrame:
    """A best-so-far frame from (seconds, best_val, test) per ended trial; best_val None: pruned."""
    return best_so_far(pd.DataFrame(
        [{"trial": i + 1, "number": i, "state": "PRUNED" if v is None else "COMPLETE",
          "best_val": math.nan if v is None else v, "seconds": s, "test": math.nan if t is None else t}
         for i, (s, v, t) in enumerate(trials)]))


def test_quick_speed_suite_writes_table_trials_and_plot(tmp_path):
    table = run_suite("speed", tmp_path, device="cpu", quick=True)
    written = pd.read_csv(tmp_path / "speed.csv", dtype={"seed": str})
    assert set(written.columns) == TABLE and len(table) == 2
    assert list(written["seed"]) == ["0", "all"] and written["ratio_ok_seeds"].iloc[-1] in (0, 1)
    assert (written["peer_epochs"] == QUICK_EPOCHS).all() and (written["threads"] == 1).all()
    trials = pd.read_csv(tmp_path / "speed_trials.csv")
    assert set(trials.columns) == TRIALS and set(trials["method"]) == {"tool", "peer"}
    assert (trials["seconds"] <= written["budget_s"].iloc[0]).all()  # only what ended within the budget counts
    for _, one in trials.groupby("method"):
        assert one["best"].dropna().is_monotonic_increasing and one["seconds"].is_monotonic_increasing
    seed, peer = written.iloc[0], trials[trials["method"] == "peer"]
    assert (peer["state"] == "COMPLETE").all() and peer["test"].between(0, 1).all()
    assert seed["peer_best"] == peer["best_val"].max()
    assert seed["peer_s"] == peer.loc[peer["best_val"].idxmax(), "seconds"]
    assert math.isclose(seed["ratio"], seed["peer_s"] / seed["tool_s"])
    assert (tmp_path / "speed.png").stat().st_size > 10_000


def test_the_ratio_is_the_peers_time_to_its_final_best_over_the_tools():
    peer = run((30.0, 0.80, 0.79), (100.0, 0.90, 0.88), (300.0, 0.85, 0.95))  # a later, worse trial: not the best
    tool = run((2.0, None, None), (8.0, 0.91, 0.90), (9.0, 0.91, 0.50), (20.0, 0.95, 0.93))
    row = compare(peer, tool, budget_s=720.0)
    assert (row["peer_best"], row["peer_s"], row["peer_trials"]) == (0.90, 100.0, 2)
    assert (row["tool_s"], row["tool_trials"], row["tool_reached"]) == (8.0, 2, True)
    assert (row["ratio"], row["ratio_is"], row["ratio_ok"], RATIO_TARGET) == (12.5, "exact", True, 10.0)
    assert (row["peer_test"], row["tool_test"], row["test_ok"]) == (0.88, 0.93, True)
    assert (row["peer_ended"], row["tool_ended"], row["tool_best"]) == (3, 4, 0.95)


def test_a_tool_that_never_reaches_the_peers_best_makes_the_ratio_a_bound():
    peer = run((50.0, 0.95, 0.94))
    tool = run((10.0, 0.90, 0.96), (20.0, 0.94, 0.90))
    row = compare(peer, tool, budget_s=600.0)
    assert (row["tool_s"], row["tool_reached"], row["ratio"]) == (600.0, False, 50.0 / 600.0)
    assert row["ratio_is"].startswith("upper bound") and not row["ratio_ok"]
    assert (row["tool_test"], row["test_ok"]) == (0.90, False)  # the best-validation trial's test, not the highest
    none = compare(run((5.0, None, None)), tool, budget_s=600.0)
    assert math.isnan(none["ratio"]) and none["ratio_is"].startswith("none") and not none["ratio_ok"]


def test_the_summary_takes_medians_spreads_and_counts_the_seeds_that_meet_each_target():
    rows = [{**compare(run((100.0, 0.9, 0.90)), run((s, 0.9, t)), 600.0), "seed": str(i)}
            for i, (s, t) in enumerate([(5.0, 0.91), (20.0, 0.89), (8.0, 0.92)])]
    summary = summarise(rows)
    assert (summary["ratio"], summary["ratio_min"], summary["ratio_max"]) == (12.5, 5.0, 20.0)
    assert (summary["tool_test"], summary["tool_test_min"], summary["peer_test"]) == (0.91, 0.89, 0.90)
    assert summary["ratio_ok"] is True and summary["test_ok"] is True
    assert (summary["ratio_ok_seeds"], summary["test_ok_seeds"]) == (2, 2)


def test_a_run_is_read_from_its_storage_with_each_trials_test_and_cut_at_the_budget(tmp_path):
    url, start = f"sqlite:///{tmp_path / 'run.db'}", datetime(2025, 1, 1)
    study = optuna.create_study(storage=url, study_name="peer", direction="maximize")
    for seconds, value in ((10, 0.7), (40, 0.8), (70, 0.9)):  # the last ends after the budget
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=value, values=None,
            datetime_start=start, datetime_complete=start + timedelta(seconds=seconds), params={}, distributions={},
            user_attrs={"best_val": value, "test": value - 0.05}, system_attrs={}, intermediate_values={}))
    frame = read_run(url, "peer", start, budget_s=60.0)
    assert list(frame["seconds"]) == [10.0, 40.0] and list(frame["best"]) == [0.7, 0.8]
    assert frame["test"].round(2).tolist() == [0.65, 0.75]


def test_every_seed_and_side_has_its_own_study_so_hyperband_brackets_differ_between_seeds(tmp_path):
    # Hyperband brackets trial n by a hash of the study's name: one name for all seeds would tie their brackets.
    names = {_study(m, seed) for m in METHODS for seed in range(5)}
    assert len(names) == 10
    assert all(_storage(m, 3, tmp_path).endswith(f"{_study(m, 3)}.db") for m in METHODS)
