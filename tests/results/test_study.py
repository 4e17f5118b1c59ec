"""Reading a study back: which study, the ranking order export picks from, Pareto points, one-line refusals."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from nas.results.study import objectives, open_study, pick_trial, ranked_trials, resolve_study, state_counts
from nas.search.heartbeat import HEARTBEAT_ATTR
from nas.search.study import StudyError
from tests.support.studies import hand_study


def test_ranking_is_best_first_with_ties_broken_by_trial_number():
    study = hand_study([{"values": [0.5]}, {"values": [0.9]}, {"state": TrialState.PRUNED}, {"values": [0.9]}])
    assert [t.number for t in ranked_trials(study)] == [1, 3, 0]
    low = hand_study([{"values": [0.5]}, {"values": [0.9]}], directions=("minimize",), metric="mse")
    assert [t.number for t in ranked_trials(low)] == [0, 1]


def test_trials_tied_on_the_metric_rank_by_their_cross_validated_loss():
    rows = [{"values": [1.0], "result": {"cv": {"losses": loss}}} for loss in ([0.3, 0.3], [0.1, 0.2], None)]
    rows[2]["result"] = {}  # not cross-validated: no loss to rank by, so after those with one
    study = hand_study(rows + [{"values": [0.9], "result": {"cv": {"losses": [0.01]}}}])
    assert [t.number for t in ranked_trials(study)] == [1, 0, 2, 3]


def test_multi_objective_default_is_the_most_accurate_pareto_point_and_trial_must_be_on_the_front():
    rows = [{"values": [0.90, 9.0]}, {"values": [0.90, 3.0]}, {"values": [0.80, 1.0]}, {"values": [0.70, 2.0]}]
    study = hand_study(rows, directions=("maximize", "minimize"))
    assert objectives(study).names == ("val", "objective_1")
    assert pick_trial(study).number == 1  # 0 ties on accuracy but is slower: dominated by 1
    assert pick_trial(study, 2).number == 2
    with pytest.raises(StudyError, match=r"trial 3 is not on the Pareto front.*Pareto trials, most accurate first: 1, 2"):
        pick_trial(study, 3)


def test_the_task_metric_is_found_by_name_among_the_objectives():
    study = hand_study([{"values": [5.0, 0.8]}, {"values": [1.0, 0.7]}], directions=("minimize", "maximize"))
    study.set_metric_names(["latency_ms", "accuracy"])
    goal = objectives(study)
    assert goal.primary == 1 and goal.names == ("objective_latency_ms", "val")
    assert pick_trial(study).number == 0


def test_a_study_without_complete_trials_is_refused_with_its_counts():
    study = hand_study([{"state": TrialState.PRUNED}, {"state": TrialState.FAIL}])
    with pytest.raises(StudyError, match=r"has no complete trial yet \(1 pruned, 1 failed\)"):
        ranked_trials(study)


def test_counts_name_a_running_trial_whose_worker_stopped_beating_apart_from_one_still_training():
    study = hand_study([{"values": [0.9]}])
    study.ask()  # just started: training
    study.ask().set_user_attr(HEARTBEAT_ATTR, time.time() - 3600)  # its worker was killed an hour ago
    assert state_counts(study.get_trials()) == ("1 complete, 2 running; 1 running without a heartbeat: worker gone, "
                                                "the next run of the search retries it")
    study.ask().set_user_attr(HEARTBEAT_ATTR, time.time())
    assert state_counts(study.get_trials()).startswith("1 complete, 3 running; 1 running without a heartbeat")


def test_resolve_study_fills_in_what_only_one_study_fits(tmp_path):
    with pytest.raises(StudyError, match="holds no study"):
        resolve_study(None, None, tmp_path)
    url = f"sqlite:///{tmp_path / 'only.db'}"
    optuna.create_study(study_name="only", storage=url)
    assert resolve_study(None, None, tmp_path) == ("only", url)
    assert resolve_study(None, url, tmp_path) == ("only", url)
    optuna.create_study(study_name="second", storage=url)
    with pytest.raises(StudyError, match=r"holds 2 studies \(only, second\); name one with --study"):
        resolve_study(None, url, tmp_path)


def test_opening_a_missing_storage_or_study_names_what_exists(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    optuna.create_study(study_name="a", storage=url)
    with pytest.raises(StudyError, match=r"no study storage at .*b\.db'; studies in .*: a"):
        open_study("b", f"sqlite:///{tmp_path / 'b.db'}")
    assert not (tmp_path / "b.db").exists()
    with pytest.raises(StudyError, match="study 'b' is not in .*; studies there: a"):
        open_study("b", url)
