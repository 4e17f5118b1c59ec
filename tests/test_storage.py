"""The search's storage: a running trial's writes batched into one transaction, its reads answered from memory,
and what the database holds is what Optuna's own storage would have written."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import nas.storage
from nas.snapshot import count_trials
from nas.storage import SearchStorage, batched_writes
from nas.study import open_storage
from tests.sql_statements import Statements

DIRECTIONS = [StudyDirection.MAXIMIZE]
TRIAL_RECORDS = ("trial_params", "trial_user_attributes", "trial_system_attributes")


def two_storages(tmp_path) -> tuple[SearchStorage, SearchStorage, int]:
    """The storage of a worker and a second process's view of the same database, with a study."""
    url = f"sqlite:///{tmp_path}/s.db"
    worker = open_storage(url)
    return worker, open_storage(url), worker.create_new_study(DIRECTIONS, "s")


def comparable(trial: FrozenTrial) -> tuple:
    return (trial.number, trial.state, trial.params, trial.distributions, trial.user_attrs, trial.system_attrs,
            trial.intermediate_values, trial.datetime_start)


def test_a_batch_is_one_transaction_that_others_see_only_when_it_ends(tmp_path):
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    statements = Statements(worker.engine)
    with worker.batched(trial):
        worker.set_trial_param(trial, "heads", 2, IntDistribution(1, 8))
        worker.set_trial_param(trial, "kind", 1, CategoricalDistribution(["dot", "additive"]))
        worker.set_trial_user_attr(trial, "arch", {"kind": "additive", "heads": 2})
        worker.set_trial_user_attr(trial, "seed", 7)
        worker.set_trial_system_attr(trial, "note", [1, 2])
        seen = other.get_trial(trial)
        assert seen.params == {} and seen.user_attrs == {} and seen.system_attrs == {}
    assert len(statements.commits) == 1
    stored = other.get_trial(trial)
    assert stored.params == {"heads": 2, "kind": "additive"}
    assert stored.user_attrs == {"arch": {"kind": "additive", "heads": 2}, "seed": 7}
    assert stored.system_attrs == {"note": [1, 2]}


def test_a_running_trial_reads_from_memory_what_the_database_holds(tmp_path):
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    with worker.batched(trial):
        worker.set_trial_param(trial, "lr", 0.01, FloatDistribution(1e-4, 1e-1, log=True))
        worker.set_trial_user_attr(trial, "summary", "dot x2")
    worker.set_trial_user_attr(trial, "summary", "dot x2, sum")  # unbatched, and over an existing key
    worker.set_trial_system_attr(trial, "bracket", 1)
    worker.set_trial_intermediate_value(trial, 1, 0.5)
    statements = Statements(worker.engine)
    mine = worker.get_trial(trial)
    assert statements.sql == []  # answered from memory
    assert comparable(mine) == comparable(other.get_trial(trial))
    assert worker.get_trial_user_attrs(trial) == {"summary": "dot x2, sum"}
    assert worker.get_trial_system_attrs(trial) == {"bracket": 1}
    mine.user_attrs["summary"] = "changed by the caller"  # a copy: the storage's own stays as written
    assert worker.get_trial(trial).user_attrs["summary"] == "dot x2, sum"

    worker.set_trial_state_values(trial, TrialState.COMPLETE, [0.9])
    statements.sql.clear()
    ended = worker.get_trial(trial)  # as Optuna reads it for the callbacks: ended trials never change
    assert statements.sql == [] and ended.state == TrialState.COMPLETE and ended.values == [0.9]
    assert comparable(ended) + (ended.values, ended.datetime_complete) == \
        comparable(other.get_trial(trial)) + (other.get_trial(trial).values, other.get_trial(trial).datetime_complete)
    worker.create_new_trial(study)
    statements.sql.clear()
    assert comparable(worker.get_trial(trial)) == comparable(ended) and statements.sql != []  # read again


@pytest.mark.parametrize("ids_asked", [nas.storage.MAX_IDS_ASKED, 0])  # 0: every read goes the long way
def test_the_study_s_trials_read_with_this_storage_s_own_from_memory_are_what_the_database_holds(
        tmp_path, monkeypatch, ids_asked):
    monkeypatch.setattr(nas.storage, "MAX_IDS_ASKED", ids_asked)
    worker, other, study = two_storages(tmp_path)
    ended = worker.create_new_trial(study)
    theirs_running = other.create_new_trial(study)
    worker.set_trial_state_values(ended, TrialState.COMPLETE, [0.5])
    theirs_ended = other.create_new_trial(study)
    other.set_trial_state_values(theirs_ended, TrialState.PRUNED)
    running = worker.create_new_trial(study)
    with worker.batched(running):
        worker.set_trial_user_attr(running, "seed", 3)
    after = other.create_new_trial(study)
    assert worker._own.keys() == {running}  # the ended one was dropped when the next was made
    ended_again = worker.create_new_trial(study)
    worker.set_trial_state_values(ended_again, TrialState.FAIL)
    assert worker._own.keys() == {running, ended_again}
    for states in (None, (TrialState.RUNNING,), (TrialState.COMPLETE, TrialState.FAIL)):
        for included, greater_than in ((set(), -1), ({theirs_running}, ended), ({running}, theirs_ended),
                                       ({theirs_running, running}, after), (set(), ended_again)):
            mine = worker._get_trials(study, states, included, greater_than)
            reference = other._get_trials(study, states, included, greater_than)
            assert [comparable(t) + (t.values, t.datetime_complete) for t in mine] == \
                [comparable(t) + (t.values, t.datetime_complete) for t in reference], (states, included, greater_than)


def test_a_trial_another_worker_failed_refuses_the_writes_of_its_old_worker(tmp_path):
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    other.set_trial_state_values(trial, TrialState.FAIL)  # failed as stale: its heartbeats stopped
    with pytest.raises(RuntimeError, match="finished"):
        worker.set_trial_user_attr(trial, "test", 0.5)
    with pytest.raises(RuntimeError, match="finished"):
        with worker.batched(trial):
            worker.set_trial_user_attr(trial, "test", 0.5)
    with pytest.raises(RuntimeError, match="finished"):
        worker.set_trial_state_values(trial, TrialState.COMPLETE, [1.0])
    assert other.get_trial(trial).user_attrs == {} and worker.get_trial(trial).state == TrialState.FAIL


def test_a_parameter_whose_distribution_conflicts_with_the_study_s_fails_the_whole_batch(tmp_path):
    worker, other, study = two_storages(tmp_path)
    first = other.create_new_trial(study)
    other.set_trial_param(first, "kind", 0, CategoricalDistribution(["dot", "additive"]))
    trial = worker.create_new_trial(study)
    with pytest.raises(ValueError, match="kind"):
        with worker.batched(trial):
            worker.set_trial_user_attr(trial, "seed", 1)
            worker.set_trial_param(trial, "kind", 0, CategoricalDistribution(["dot", "cosine"]))
    assert other.get_trial(trial).user_attrs == {} and other.get_trial(trial).params == {}
    with worker.batched(trial):  # a compatible one goes in
        worker.set_trial_param(trial, "kind", 1, CategoricalDistribution(["dot", "additive"]))
    assert other.get_trial(trial).params == {"kind": "additive"}


def test_a_retry_s_copied_attributes_are_overwritten_not_duplicated(tmp_path):
    worker, other, study = two_storages(tmp_path)
    template = optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={"seed": 1, "arch": "dead trial's"})
    trial = worker.create_new_trial(study, template)
    assert worker.set_trial_state_values(trial, TrialState.RUNNING)
    with worker.batched(trial):
        worker.set_trial_user_attr(trial, "arch", "retry's")
        worker.set_trial_user_attr(trial, "device", "cpu")
    assert other.get_trial(trial).user_attrs == {"seed": 1, "arch": "retry's", "device": "cpu"}


def test_a_value_that_cannot_be_stored_is_refused_where_it_is_set(tmp_path):
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    with worker.batched(trial):
        with pytest.raises(TypeError):
            worker.set_trial_user_attr(trial, "model", object())
        worker.set_trial_user_attr(trial, "seed", 3)
    assert other.get_trial(trial).user_attrs == {"seed": 3}


def test_an_objective_s_batch_goes_through_optuna_s_trial_and_its_cache(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/o.db"), study_name="o")
    backend = study._storage._backend
    statements = Statements(backend.engine)

    def objective(trial: optuna.Trial) -> float:
        with batched_writes(trial):
            x = trial.suggest_float("x", -1, 1)
            trial.suggest_categorical("kind", ["dot", "cosine"])
            trial.set_user_attr("seen", x)
            assert trial.params["x"] == x and trial.user_attrs["seen"] == x
        return x

    study.optimize(objective, n_trials=3)
    assert statements.writes_to(*TRIAL_RECORDS) == 3  # one transaction per trial for its parameters and attribute
    assert [t.user_attrs["seen"] for t in study.trials] == [t.params["x"] for t in study.trials]
    assert count_trials(study, (TrialState.COMPLETE,)) == 3 and count_trials(study, (TrialState.FAIL,)) == 0


def test_batched_writes_go_one_by_one_on_a_storage_that_is_not_the_search_s():
    study = optuna.create_study()  # in memory
    trial = study.ask()
    with batched_writes(trial):
        trial.set_user_attr("seed", 1)
        assert study.trials[0].user_attrs == {"seed": 1}
    assert count_trials(study, (TrialState.RUNNING,)) == 1


def test_batched_writes_on_a_fixed_trial_do_nothing_special():
    trial = optuna.trial.FixedTrial({"x": 0.5})
    with batched_writes(trial):
        assert trial.suggest_float("x", 0, 1) == 0.5


def test_a_deleted_study_s_trials_are_no_longer_answered_from_memory(tmp_path):
    worker, _, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    worker.delete_study(study)
    with pytest.raises(KeyError):
        worker.get_trial(trial)
