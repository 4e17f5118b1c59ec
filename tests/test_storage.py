"""The search's storage: a running trial's writes kept and written together, its reads answered from memory,
and what the database holds is what Optuna's own storage would have written."""

from __future__ import annotations

import datetime
import time

import optuna
import pytest
import sqlalchemy
from optuna.storages._rdb import models
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import nas.storage
import nas.trial_loop
from nas.benchmarks.distance import DistantServer
from nas.snapshot import count_trials
from nas.storage import SearchStorage, batched_writes
from nas.study import open_storage
from tests.sql_statements import Statements

DIRECTIONS = [StudyDirection.MAXIMIZE]
TRIAL_RECORDS = ("trial_params", "trial_user_attributes", "trial_system_attributes")


def two_storages(tmp_path, url: str | None = None) -> tuple[SearchStorage, SearchStorage, int]:
    """The storage of a worker and a second process's view of the same database, with a study of its own."""
    url = url or f"sqlite:///{tmp_path}/s.db"
    worker = open_storage(url)
    return worker, open_storage(url), worker.create_new_study(DIRECTIONS, tmp_path.name)


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


def test_a_running_trial_reads_from_memory_what_the_database_holds_once_its_kept_writes_are_written(tmp_path, database):
    worker, other, study = two_storages(tmp_path, database)
    trial = worker.create_new_trial(study)
    with worker.batched(trial):
        worker.set_trial_param(trial, "lr", 0.01, FloatDistribution(1e-4, 1e-1, log=True))
        worker.set_trial_user_attr(trial, "summary", "dot x2")
    worker.set_trial_user_attr(trial, "summary", "dot x2, sum")  # kept, and over an existing key
    worker.set_trial_system_attr(trial, "bracket", 1)
    worker.set_trial_intermediate_value(trial, 1, 0.5)
    statements = Statements(worker.engine)
    mine = worker.get_trial(trial)
    assert statements.sql == []  # answered from memory, kept writes included
    assert worker.get_trial_user_attrs(trial) == {"summary": "dot x2, sum"}
    assert worker.get_trial_system_attrs(trial) == {"bracket": 1} and mine.intermediate_values == {1: 0.5}
    assert other.get_trial(trial).user_attrs == {"summary": "dot x2"}  # not written yet
    worker.flush()
    assert comparable(mine) == comparable(other.get_trial(trial))
    mine.user_attrs["summary"] = "changed by the caller"  # a copy: the storage's own stays as written
    assert worker.get_trial(trial).user_attrs["summary"] == "dot x2, sum"

    worker.set_trial_state_values(trial, TrialState.COMPLETE, [0.9])
    statements.sql.clear()
    ended = worker.get_trial(trial)  # as Optuna reads it for the callbacks: ended trials never change
    assert statements.sql == [] and ended.state == TrialState.COMPLETE and ended.values == [0.9]
    assert comparable(ended) + (ended.values, ended.datetime_complete) == \
        comparable(other.get_trial(trial)) + (other.get_trial(trial).values, other.get_trial(trial).datetime_complete)
    worker.create_new_trial(study)
    assert trial in {t._trial_id for t in worker._get_trials(study, None, set(), -1)}  # as Optuna's cache reads it
    statements.sql.clear()
    assert comparable(worker.get_trial(trial)) == comparable(ended) and statements.sql != []  # read again


def test_a_trial_s_parameters_and_attributes_go_a_table_at_a_time_in_few_statements(tmp_path, database, monkeypatch):
    monkeypatch.setattr(nas.storage, "ROWS_PER_STATEMENT", 3)
    worker, other, study = two_storages(tmp_path, database)
    trial = worker.create_new_trial(study)
    statements = Statements(worker.engine)
    with worker.batched(trial):
        for i in range(7):
            worker.set_trial_param(trial, f"p{i}", i, IntDistribution(0, 9))
        for i in range(4):
            worker.set_trial_user_attr(trial, f"a{i}", {"i": i, "quoted": "it's 100%?"})
    inserts = [sql for sql in statements.sql if sql.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 3 + 2  # 7 rows in statements of 3 at most, then 4
    stored = other.get_trial(trial)
    assert stored.params == {f"p{i}": i for i in range(7)}
    assert stored.user_attrs == {f"a{i}": {"i": i, "quoted": "it's 100%?"} for i in range(4)}


def test_a_running_trial_s_curve_and_results_are_written_with_its_state_in_one_transaction(tmp_path, database, monkeypatch):
    monkeypatch.setattr(nas.storage, "WRITE_BEHIND_SECONDS", 3600)
    worker, other, study = two_storages(tmp_path, database)
    trial = worker.create_new_trial(study)
    statements = Statements(worker.engine)
    for epoch, value in enumerate([0.5, float("nan"), 0.75], start=1):
        worker.set_trial_intermediate_value(trial, epoch, value)
        worker.set_trial_system_attr(trial, f"completed_rung_{epoch}", value)
    worker.set_trial_user_attr(trial, "best_val", 0.75)
    assert statements.sql == [] and other.get_trial(trial).intermediate_values == {}
    worker.set_trial_state_values(trial, TrialState.COMPLETE, [0.75])
    assert len(statements.commits) == 1
    stored = other.get_trial(trial)
    assert stored.state == TrialState.COMPLETE and stored.user_attrs == {"best_val": 0.75}
    assert stored.intermediate_values[1] == 0.5 and stored.intermediate_values[3] == 0.75
    assert len(stored.system_attrs) == 3 and stored.intermediate_values[2] != stored.intermediate_values[2]  # NaN


def test_an_epoch_s_value_a_while_after_the_trial_s_last_write_goes_at_once_with_what_was_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(nas.storage, "WRITE_BEHIND_SECONDS", 0.2)
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    worker.set_trial_intermediate_value(trial, 1, 0.5)  # short epochs: kept
    worker.set_trial_intermediate_value(trial, 2, 0.6)
    assert other.get_trial(trial).intermediate_values == {}
    time.sleep(0.25)
    worker.set_trial_intermediate_value(trial, 3, 0.7)  # a long epoch: written at once, as Optuna would
    assert other.get_trial(trial).intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}
    worker.set_trial_intermediate_value(trial, 4, 0.8)
    assert other.get_trial(trial).intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}
    worker.set_trial_system_attr(trial, "completed_rung_0", 0.7)
    time.sleep(0.25)
    worker.set_trial_user_attr(trial, "best_val", 0.9)  # results wait for the trial's state
    assert other.get_trial(trial).user_attrs == {}
    worker.set_trial_intermediate_value(trial, 5, 0.9)
    stored = other.get_trial(trial)
    assert stored.intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8, 5: 0.9}
    assert stored.system_attrs == {"completed_rung_0": 0.7} and stored.user_attrs == {"best_val": 0.9}


def test_a_waiting_trial_this_storage_starts_is_then_read_from_memory(tmp_path, database):
    worker, other, study = two_storages(tmp_path, database)
    template = optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={"seed": 1},
                                         system_attrs={"retry_history": [0]})
    trial = other.create_new_trial(study, template)
    assert worker.set_trial_state_values(trial, TrialState.RUNNING)  # popped, as Optuna runs a retry
    worker.set_trial_user_attr(trial, "seed", 2)
    statements = Statements(worker.engine)
    assert worker.get_trial(trial).user_attrs == {"seed": 2} and statements.sql == []
    worker.set_trial_state_values(trial, TrialState.COMPLETE, [1.0])
    assert comparable(worker.get_trial(trial)) == comparable(other.get_trial(trial))


@pytest.mark.parametrize("ids_asked", [nas.storage.MAX_IDS_ASKED, 0])  # 0: every read goes the long way
def test_the_study_s_trials_read_with_this_storage_s_own_from_memory_are_what_the_database_holds(
        tmp_path, database, monkeypatch, ids_asked):
    monkeypatch.setattr(nas.storage, "MAX_IDS_ASKED", ids_asked)
    worker, other, study = two_storages(tmp_path, database)
    ended = worker.create_new_trial(study)
    theirs_running = other.create_new_trial(study)
    worker.set_trial_state_values(ended, TrialState.COMPLETE, [0.5])
    theirs_ended = other.create_new_trial(study)
    other.set_trial_state_values(theirs_ended, TrialState.PRUNED)
    running = worker.create_new_trial(study)
    with worker.batched(running):
        worker.set_trial_user_attr(running, "seed", 3)
    after = other.create_new_trial(study)
    ended_again = worker.create_new_trial(study)
    worker.set_trial_state_values(ended_again, TrialState.FAIL)
    assert worker._own.keys() == {ended, running, ended_again}  # ended ones stay until a read returns them
    for states in (None, (TrialState.RUNNING,), (TrialState.COMPLETE, TrialState.FAIL)):
        for included, greater_than in ((set(), -1), ({theirs_running}, ended), ({running}, theirs_ended),
                                       ({theirs_running, running}, after), (set(), ended_again)):
            mine = worker._get_trials(study, states, included, greater_than)
            reference = other._get_trials(study, states, included, greater_than)
            assert [comparable(t) + (t.values, t.datetime_complete) for t in mine] == \
                [comparable(t) + (t.values, t.datetime_complete) for t in reference], (states, included, greater_than)
    assert worker._own.keys() == {running, ended_again} or ids_asked == 0  # the newest stays: it bounds the query


def test_others_are_asked_for_when_a_trial_of_theirs_runs_or_may_be_missing_and_else_once_a_while(
        tmp_path, database, monkeypatch):
    monkeypatch.setattr(nas.storage, "OTHERS_ASKED_SECONDS", 0.5)
    worker, other, study = two_storages(tmp_path, database)
    cache = optuna.storages._CachedStorage(worker)  # as Optuna reads a study: ids above the last finished one
    statements = Statements(worker.engine)

    def read() -> list[int]:
        statements.sql.clear()
        return [t.number for t in cache.get_all_trials(study, deepcopy=False)]

    first = worker.create_new_trial(study)
    worker.set_trial_state_values(first, TrialState.COMPLETE, [0.5])
    assert read() == [0] and statements.sql != []
    theirs = other.create_new_trial(study)
    assert read() == [0] and statements.sql == []  # asked a moment ago, and no other trial was running
    worker.create_new_trial(study)
    assert read() == [0, 1, 2]  # made before this worker's new trial: missing, so asked for at its first read
    assert cache.get_trial(theirs).state == TrialState.RUNNING
    other.set_trial_user_attr(theirs, "epoch", 1)
    other.flush()
    assert read() == [0, 1, 2] and statements.sql != []  # another worker's running trial: read every time
    assert cache.get_trial(theirs).user_attrs == {"epoch": 1}
    other.set_trial_state_values(theirs, TrialState.COMPLETE, [0.7])
    assert read() == [0, 1, 2] and cache.get_trial(theirs).state == TrialState.COMPLETE
    worker.create_new_trial(study)
    assert read() == [0, 1, 2, 3] and statements.sql == []  # nothing of theirs runs or is missing
    later = other.create_new_trial(study)
    assert read() == [0, 1, 2, 3] and statements.sql == []
    time.sleep(0.5)
    assert read() == [0, 1, 2, 3, 4] and cache.get_trial(later).state == TrialState.RUNNING


def test_a_trial_ended_here_counts_its_study_s_trials_by_state_as_it_ended(tmp_path, database):
    worker, other, study = two_storages(tmp_path, database)
    done = worker.create_new_trial(study)
    worker.set_trial_state_values(done, TrialState.COMPLETE, [1.0])
    theirs = other.create_new_trial(study)
    failed = worker.create_new_trial(study)
    assert worker.counts_when_ended(failed) is None  # running
    worker.set_trial_state_values(failed, TrialState.FAIL)
    as_ended = {TrialState.COMPLETE: 1, TrialState.RUNNING: 1, TrialState.FAIL: 1}
    assert worker.counts_when_ended(failed) == as_ended and worker.counts_when_ended(done) is None  # the last only
    other.set_trial_state_values(theirs, TrialState.PRUNED)
    assert worker.counts_when_ended(failed) == as_ended  # as it ended, not as the study is now
    assert other.counts_when_ended(theirs) == {TrialState.COMPLETE: 1, TrialState.PRUNED: 1, TrialState.FAIL: 1}


def test_a_trial_made_set_up_and_ended_takes_three_round_trips_to_postgresql(tmp_path, postgres_url):
    with DistantServer(sqlalchemy.engine.make_url(postgres_url).port, round_trip=0.01) as distant:
        worker, other, study = two_storages(tmp_path, distant.url(postgres_url))

        def run_trial() -> int:
            trial = worker.create_new_trial(study)  # the study locked, the trial and its heartbeat made, COMMIT
            with worker.batched(trial):  # the trial locked, its rows, its state read back with COMMIT
                worker.set_trial_param(trial, "heads", 2, IntDistribution(1, 8))
                worker.set_trial_user_attr(trial, "arch", {"heads": 2})
            worker.set_trial_intermediate_value(trial, 0, 0.5)
            worker.set_trial_state_values(trial, TrialState.COMPLETE, [0.5])  # locked, rows, its state changed, COMMIT
            return trial

        run_trial()  # the first reads the parameter's distribution in the study, once
        trips = distant.round_trips
        trial = run_trial()
        assert distant.round_trips - trips == 3
        trips = distant.round_trips
        worker.record_heartbeat(trial)
        assert distant.round_trips - trips == 1
        ended = other.get_trial(trial)
        assert (ended.state, ended.values, ended.params, ended.intermediate_values) == (
            TrialState.COMPLETE, [0.5], {"heads": 2}, {0: 0.5})


def test_a_trial_another_worker_failed_refuses_the_writes_of_its_old_worker(tmp_path, database):
    worker, other, study = two_storages(tmp_path, database)
    trial = worker.create_new_trial(study)
    worker.set_trial_user_attr(trial, "seed", 1)  # kept
    worker.set_trial_param(trial, "heads", 2, IntDistribution(1, 8))
    worker.set_trial_intermediate_value(trial, 1, 0.5)
    other.set_trial_state_values(trial, TrialState.FAIL)  # failed as stale: its heartbeats stopped
    with pytest.raises(RuntimeError, match="finished"):
        worker.set_trial_state_values(trial, TrialState.COMPLETE, [1.0])
    with pytest.raises(RuntimeError, match="finished"):
        worker.set_trial_user_attr(trial, "test", 0.5)  # refused at once from now on
    with pytest.raises(RuntimeError, match="finished"):
        with worker.batched(trial):
            worker.set_trial_user_attr(trial, "test", 0.5)
            worker.set_trial_param(trial, "kind", 0, CategoricalDistribution(["dot", "additive"]))
    failed = other.get_trial(trial)
    assert (failed.user_attrs, failed.params, failed.intermediate_values, failed.values) == ({}, {}, {}, None)
    assert worker.get_trial(trial).state == TrialState.FAIL


def test_kept_writes_to_a_trial_another_worker_failed_are_refused_when_they_would_be_written(tmp_path):
    worker, other, study = two_storages(tmp_path)
    trial = worker.create_new_trial(study)
    worker.set_trial_intermediate_value(trial, 1, 0.5)
    other.set_trial_state_values(trial, TrialState.FAIL)
    with pytest.raises(RuntimeError, match="finished"):
        worker.flush()
    assert other.get_trial(trial).intermediate_values == {} and worker.get_trial(trial).state == TrialState.FAIL


def test_a_parameter_whose_distribution_conflicts_with_the_study_s_fails_the_whole_batch(tmp_path):
    worker, other, study = two_storages(tmp_path)
    first = other.create_new_trial(study)
    other.set_trial_param(first, "kind", 0, CategoricalDistribution(["dot", "additive"]))
    other.flush()
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


def test_stale_trials_are_those_optuna_finds_looked_for_once_a_heartbeat_interval(tmp_path, database, monkeypatch):
    monkeypatch.setattr(nas.trial_loop, "HEARTBEAT_SECONDS", 0.5)  # grace period: 1.5 s
    worker = open_storage(database, heartbeat=True)
    study = worker.create_new_study(DIRECTIONS, tmp_path.name)
    dead, alive, ended = (worker.create_new_trial(study) for _ in range(3))  # each with its first heartbeat
    open_storage(database).create_new_trial(study)  # made with heartbeats off: it never beats, so is never stale
    worker.set_trial_state_values(ended, TrialState.COMPLETE, [1.0])
    beats = models.TrialHeartbeatModel.__table__
    with worker.engine.begin() as connection:  # the dead worker's last beat, an hour ago by the database's clock
        hour_ago = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar().replace(tzinfo=None) \
            - datetime.timedelta(hours=1)
        connection.execute(sqlalchemy.update(beats).where(beats.c.trial_id.in_([dead, ended])).values(heartbeat=hour_ago))
    assert worker._get_stale_trial_ids(study) == [dead]
    assert optuna.storages.RDBStorage._get_stale_trial_ids(worker, study) == [dead]
    statements = Statements(worker.engine)
    assert worker._get_stale_trial_ids(study) == [] and statements.sql == []  # looked for a moment ago
    time.sleep(0.5)
    assert worker._get_stale_trial_ids(study) == [dead] and len(statements.sql) == 1


def test_a_trial_s_first_heartbeat_goes_with_it_and_its_heartbeat_thread_s_first_is_not_written_again(
        tmp_path, database):
    worker = open_storage(database, heartbeat=True)
    study = worker.create_new_study(DIRECTIONS, tmp_path.name)
    statements = Statements(worker.engine)
    trial = worker.create_new_trial(study)
    assert len(statements.commits) == 1 and statements.commits[0] == {"trials", "trial_heartbeats"}
    beats = models.TrialHeartbeatModel.__table__
    with worker.engine.connect() as connection:
        first = connection.execute(sqlalchemy.select(beats.c.heartbeat).where(beats.c.trial_id == trial)).scalar_one()
    worker.record_heartbeat(trial)  # the thread's beat as it starts: written already
    assert len(statements.commits) == 1
    time.sleep(1.1)  # SQLite's clock counts seconds
    worker.record_heartbeat(trial)
    with worker.engine.connect() as connection:
        later = connection.execute(sqlalchemy.select(beats.c.heartbeat).where(beats.c.trial_id == trial)).all()
    assert len(later) == 1 and later[0].heartbeat > first and statements.writes_to("trial_heartbeats") == 2
    retried = optuna.trial.create_trial(state=TrialState.WAITING)
    waiting = worker.create_new_trial(study, retried)
    worker.set_trial_state_values(waiting, TrialState.RUNNING)
    worker.record_heartbeat(waiting)  # made by Optuna's own path: its first beat is the thread's
    assert statements.writes_to("trial_heartbeats") == 3
