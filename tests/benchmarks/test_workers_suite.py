"""A quick run of the workers benchmark: SQLite, 1 and 2 workers, exact trial totals, storage time measured."""

from __future__ import annotations

import datetime
import io
import threading
import time
from dataclasses import replace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmarks import run_suite
from benchmarks.workers import QUICK, StorageClock, _config, _with_wall_speedup
from benchmarks.workers import enqueue_candidates, steady_rate, steady_speedup
from nas.search.storage import open_storage
from nas.search.run import run_search


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("workers")
    return out, run_suite("workers", out, device="cpu", quick=True)


def test_quick_workers_suite_writes_one_row_per_measurement(quick_run):
    out, table = quick_run
    written = pd.read_csv(out / "workers.csv")
    assert len(written) == len(table) == 3
    rates = written[written["measure"] == "throughput"]
    assert list(rates["jobs"]) == [1, 2] and set(written["storage"]) == {"sqlite"}
    assert (written["status"] == "done").all() and (written["finished"] == 4).all()
    assert (written[["wall_s", "trials_per_min_wall", "trials_per_min_steady"]] > 0).all().all()
    assert rates["speedup_steady"].iloc[0] == pytest.approx(1.0)
    assert (out / "workers.png").stat().st_size > 10_000


def test_quick_workers_suite_measures_the_storage_share_of_trial_time(quick_run):
    _, table = quick_run
    overhead = table[table["measure"] == "overhead"].iloc[0]
    assert overhead["storage_calls"] > 4  # at least a claim and a result per trial
    assert "set_trial_state_values 1.0x" in overhead["storage_by_call"]  # one end per trial
    assert "sql " in overhead["storage_by_call"]  # statements of calls Optuna's cache makes past the public API
    assert 0 <= overhead["storage_share"] < overhead["outside_training_share"] < 1
    assert overhead["storage_ms_per_trial"] == pytest.approx(1000 * overhead["storage_s"] / overhead["finished"])


class Nested:
    def outer(self) -> int:
        return self.inner() + 1

    def inner(self) -> int:
        return 1


def test_storage_clock_counts_nested_calls_once_and_only_on_its_own_thread():
    storage = Nested()
    clock = StorageClock(storage)
    assert storage.outer() == 2 and clock.calls == 1
    other = threading.Thread(target=storage.inner)
    other.start()
    other.join()
    assert clock.calls == 1 and clock.seconds > 0
    assert clock.per_trial(2).startswith("outer 0.5x ")


def test_steady_rate_counts_finished_trials_over_their_span(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/c.db"), study_name="c")
    study.optimize(lambda trial: time.sleep(0.05) or trial.suggest_float("x", 0, 1), n_trials=3)
    trials = study.get_trials()
    span = (trials[-1].datetime_complete - trials[0].datetime_start).total_seconds()
    assert steady_rate(trials) == pytest.approx(180 / span)


def ran(number: int, start: float, end: float) -> optuna.trial.FrozenTrial:
    zero = datetime.datetime(2026, 1, 1)
    return optuna.trial.FrozenTrial(number=number, state=TrialState.COMPLETE, value=0.5, values=None,
                                    datetime_start=zero + datetime.timedelta(seconds=start),
                                    datetime_complete=zero + datetime.timedelta(seconds=end), params={},
                                    distributions={}, user_attrs={}, system_attrs={}, intermediate_values={},
                                    trial_id=number)


def test_steady_rate_of_several_workers_counts_only_while_all_of_them_are_busy():
    first = [ran(i, i, i + 1) for i in range(4)]  # worker 0: from 0 s, one trial a second
    late = [ran(4 + i, 2 + i, 3 + i) for i in range(2)]  # worker 1 joins at 2 s
    assert steady_rate(first + late, jobs=2) == pytest.approx(60 * 4 / 2)  # 2-4 s: 4 trials end
    assert steady_rate(first + late, jobs=1) == pytest.approx(60 * 6 / 4)
    assert steady_rate(first, jobs=2) == pytest.approx(60)  # never 2 at once: the whole span


def test_end_to_end_speedups_compare_each_seed_with_its_own_one_worker_run():
    rows = [{"measure": "throughput", "storage": "sqlite", "seed": seed, "jobs": jobs, "trials_per_min_wall": rate}
            for seed, jobs, rate in ((0, 1, 60.0), (0, 2, 120.0), (1, 1, 80.0), (1, 2, 100.0))]
    rows.append({"measure": "overhead", "storage": "sqlite", "seed": 0, "jobs": 1, "trials_per_min_wall": 70.0})
    table = _with_wall_speedup(pd.DataFrame(rows))
    assert list(table["speedup_wall"][:4]) == [1.0, 2.0, 1.0, 1.25]
    assert pd.isna(table["speedup_wall"].iloc[4])


ALONE = [ran(0, 0, 1), ran(1, 1, 2), ran(2, 2, 4), ran(3, 4, 6)]  # one worker: two cheap candidates, two costly


def test_steady_speedup_weighs_trials_by_one_workers_time_on_them():
    # Worker 1 joins at 1 s; both go at one worker's pace until worker 1 ends at 3 s.
    both = [ran(0, 0, 1), ran(1, 1, 2), ran(3, 2, 4), ran(2, 1, 3)]
    assert steady_rate(both, jobs=2) == pytest.approx(60)  # 2 trials in 2 s, against 40/min alone: 1.5x
    assert steady_speedup(both, ALONE, jobs=2) == pytest.approx(2.0)  # 1 + 2 + half of 2 s of work in 2 s
    assert steady_speedup(ALONE, ALONE, jobs=1) == pytest.approx(1.0)


def test_steady_speedup_counts_one_workers_pauses_between_trials_with_its_trials():
    paused = [ran(0, 0, 1), ran(1, 2, 3)]  # 1 s of pause: 2 s of work take 3 s alone
    both = [ran(0, 0, 1), ran(1, 0, 1)]
    assert steady_speedup(both, paused, jobs=2) == pytest.approx(3.0)
    assert steady_speedup(paused, paused, jobs=1) == pytest.approx(1.0)


def test_the_throughput_searches_of_one_seed_train_the_same_queued_candidates(tmp_path):
    queued = []
    for jobs in (1, 2):
        config = _config(replace(QUICK, trials=3), "cpu", tmp_path, f"t{jobs}", None, jobs, pruner="none", seed=5)
        enqueue_candidates(config, seed=5)
        study = optuna.load_study(study_name=f"t{jobs}", storage=f"sqlite:///{tmp_path}/t{jobs}.db")
        assert [t.state for t in study.trials] == [TrialState.WAITING] * 3
        queued.append([t.system_attrs["fixed_params"] for t in study.trials])
    assert queued[0] == queued[1] and queued[0][0] != queued[0][1]
    outcome = run_search(replace(config, jobs=1), out=io.StringIO())  # the search resumes the study as its own
    trained = optuna.load_study(study_name="t2", storage=outcome.storage).trials
    assert outcome.status == "done" and [t.params for t in trained] == queued[1]
