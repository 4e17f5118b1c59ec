"""The report's DataFrames, computed apart from any plot, on hand-made studies with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.results.report.tables import (best_so_far, cost_front, families, family_grid, importances, learning_curves, ranking,
                               references, trials_table)
from tests.support.studies import arch, hand_study

ROWS = [
    {"values": [0.60], "arch": arch("single", "dot"), "params": 300, "test": 0.58},
    {"values": [0.80], "arch": arch("parallel", "dot", "linear"), "params": 900, "test": 0.79},
    {"state": TrialState.PRUNED, "arch": arch("single", "linear"), "best_val": 0.3, "val_history": [0.2, 0.3]},
    {"values": [0.70], "arch": arch("single", "dot"), "params": 100, "test": 0.69},
    {"values": [0.65], "arch": arch("parallel", "cosine", "dot"), "params": 800, "test": 0.66},
    {"state": TrialState.FAIL, "arch": arch("single", "dot"), "reason": "RuntimeError: out of memory"},
]


@pytest.fixture
def study():
    return hand_study(ROWS)


def test_ranking_lists_complete_trials_best_first_with_the_issue_columns(study):
    table = ranking(study, top=3)
    assert list(table.columns) == ["rank", "trial", "val", "test", "params", "flops", "latency_ms", "epochs",
                                   "seconds", "summary"]
    assert table["trial"].tolist() == [1, 3, 4] and table["rank"].tolist() == [1, 2, 3]
    assert table["trial"][0] == study.best_trial.number
    assert len(ranking(study)) == 4


def test_families_give_count_best_median_and_spread_per_topology_and_type(study):
    table = families(trials_table(study), maximize=True).set_index(["view", "family"])
    assert table.loc[("topology", "single")].to_dict() == {"complete": 2, "pruned": 1, "best": 0.70, "median": pytest.approx(0.65),
                                                          "iqr": pytest.approx(0.05)}
    assert table.loc[("topology", "parallel"), "best"] == 0.80
    dot = table.loc[("attention", "dot")]  # every complete trial uses dot
    assert (dot["complete"], dot["best"], dot["median"]) == (4, 0.80, pytest.approx(0.675))
    linear = table.loc[("attention", "linear")]
    assert (linear["complete"], linear["pruned"]) == (1, 1)
    assert table.loc["topology"].index.tolist() == ["parallel", "single"]  # best first


def test_family_grid_is_topology_by_attention_type(study):
    best, counts = family_grid(trials_table(study), maximize=True)
    assert best.loc["single", "dot"] == 0.70 and counts.loc["single", "dot"] == 2
    assert best.loc["parallel", "cosine"] == 0.65 and math.isnan(best.loc["single", "cosine"])


def test_best_so_far_only_improves_and_pruned_trials_do_not_count(study):
    history = best_so_far(trials_table(study), maximize=True)
    assert history["trial"].tolist() == [0, 1, 2, 3, 4]
    assert history["best"].tolist() == [0.60, 0.80, 0.80, 0.80, 0.80]
    assert history["elapsed_s"].tolist() == [10, 70, 130, 190, 250]
    low = best_so_far(trials_table(hand_study([{"values": [3.0]}, {"values": [1.0]}, {"values": [2.0]}],
                                              directions=("minimize",))), maximize=False)
    assert low["best"].tolist() == [3.0, 1.0, 1.0]


def test_learning_curves_keep_every_epoch_and_the_pruned_state(study):
    curves = learning_curves(study)
    pruned = curves[curves["trial"] == 2]
    assert pruned["state"].unique().tolist() == ["PRUNED"] and pruned["val"].tolist() == [0.2, 0.3]
    assert set(curves["trial"]) == {0, 1, 2, 3, 4}  # failed trials have no curve


def test_importances_need_five_complete_trials_then_rank_the_parameters(study):
    found, note = importances(study)
    assert found is None and "need 5 complete trials; this study has 4" in note
    more = hand_study([{"values": [lr * 10], "lr": lr} for lr in (1e-3, 3e-3, 1e-2, 3e-2, 5e-2, 8e-2)])
    found, note = importances(more)
    assert note is None and found.index[0] == "lr" and found.sum() == pytest.approx(1.0)


def test_cost_front_marks_the_trials_no_cheaper_one_beats(study):
    front = cost_front(trials_table(study), "params", maximize=True)
    assert front["trial"].tolist() == [3, 0, 4, 1]  # cheapest first
    assert front.set_index("trial")["front"].to_dict() == {3: True, 0: False, 4: False, 1: True}


def test_multi_objective_ranking_marks_the_pareto_front():
    study = hand_study([{"values": [0.9, 9.0]}, {"values": [0.9, 3.0]}, {"values": [0.7, 5.0]}],
                       directions=("maximize", "minimize"))
    table = ranking(study)
    assert table[["trial", "val", "objective_1", "pareto"]].values.tolist() == [
        [1, 0.9, 3.0, True], [0, 0.9, 9.0, False], [2, 0.7, 5.0, False]]


def test_ucr_tasks_show_published_references_beside_the_best_test_accuracy(study):
    table = references("ucr:GunPoint", study.best_trial)
    assert table["method"].tolist() == ["attention-nas (trial 1, best validation)", "InceptionTime", "HIVE-COTE 2"]
    assert table["test"][0] == 0.79 and all(0.9 < v <= 1 for v in table["test"][1:])
    assert references("digits", study.best_trial).empty


def test_a_failed_trial_shows_its_reason_and_a_stale_one_the_retry_that_took_its_place():
    rows = [{"state": TrialState.FAIL, "reason": "worker died: no heartbeat for 30 s; run again"},
            {"values": [0.7], "retry_of": 0},
            {"state": TrialState.FAIL, "reason": "RuntimeError: out of memory"},
            {"state": TrialState.FAIL, "reason": "surplus"}]
    reasons = trials_table(hand_study(rows))["reason"].tolist()
    assert reasons[0] == "worker died: no heartbeat for 30 s; run again as trial 1"
    assert pd.isna(reasons[1]) and reasons[2:] == ["RuntimeError: out of memory", "surplus"]
