"""Several worker processes on one study: exact totals on SQLite and PostgreSQL, and the mistakes refused."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas.objective
import nas.study
import nas.workers
from nas.benchmarks.workers import StorageClock
from nas.cli import search_main
from nas.space import load_space
from nas.study import SearchConfig, StudyError, load_search_study, open_storage, run_search, run_trials
from nas.tasks import load_task
from nas.train import Trainer
from nas.workers import assign_devices
from tests.sql_statements import Statements

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def search_with_workers(tmp_path, jobs: int, trials: int, **changes):
    config = SearchConfig(space="tiny", trials=trials, max_epochs=1, jobs=jobs, results_dir=str(tmp_path),
                          quiet=True, study="w", **changes)
    out = io.StringIO()
    outcome = run_search(config, out=out)
    return outcome, optuna.load_study(study_name="w", storage=outcome.storage).trials, out.getvalue()


def assert_exact_total(outcome, trials, total: int) -> None:
    assert outcome.status == "done" and outcome.finished == total
    assert sum(t.state in FINISHED for t in trials) == total
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    for trial in trials:  # only surplus trials fail, and they never trained
        assert trial.state in FINISHED or (trial.state == TrialState.FAIL and trial.user_attrs["reason"] == "surplus")
        assert trial.state in FINISHED or "val_history" not in trial.user_attrs
    assert len({t.user_attrs["seed"] for t in trials if t.state in FINISHED}) == total


def test_four_workers_on_sqlite_end_with_exactly_the_requested_trials(tmp_path):
    outcome, trials, text = search_with_workers(tmp_path, jobs=4, trials=8)
    assert_exact_total(outcome, trials, 8)
    assert "locked" not in text and "4 workers on cpu" in text
    assert outcome.storage.startswith("sqlite:///")


def test_three_workers_on_postgresql_end_with_exactly_the_requested_trials(tmp_path, postgres_url):
    outcome, trials, _ = search_with_workers(tmp_path, jobs=3, trials=6, storage=postgres_url)
    assert_exact_total(outcome, trials, 6)


def test_a_trial_is_surplus_when_finished_and_running_trials_ahead_reach_the_total(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    running = study.ask()  # a worker's trial in hand, ahead of the next one
    assert nas.objective.is_surplus(study, running.number + 1, total=2)
    assert not nas.objective.is_surplus(study, running.number + 1, total=3)
    assert not nas.objective.is_surplus(study, running.number, total=2)  # a trial does not count itself


def test_a_postgresql_url_without_its_driver_names_the_extra(monkeypatch):
    real = nas.study.importlib.util.find_spec
    monkeypatch.setattr(nas.study.importlib.util, "find_spec", lambda name: None if name == "psycopg" else real(name))
    with pytest.raises(StudyError, match=r"install the 'postgres' extra: pip install -e '\.\[postgres\]'"):
        open_storage("postgresql://user@localhost/db")


def test_a_postgresql_server_that_refuses_is_one_clear_line(tmp_path, capsys):
    status = search_main(["--space", "tiny", "--results", str(tmp_path), "--storage", "postgresql://u@127.0.0.1:9/db"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "cannot open storage 'postgresql+psycopg://u@127.0.0.1:9/db'" in err and "refused" in err


@pytest.mark.parametrize("argv,message", [
    (["--jobs", "0"], "argument --jobs: '0' must be an integer >= 1"),
    (["--devices", ","], "argument --devices: ',' names no device"),
])
def test_worker_flag_mistakes_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        search_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1


def test_devices_are_shared_in_turn_and_a_missing_one_is_refused():
    assert assign_devices(("cpu",), jobs=3, default="auto") == ["cpu", "cpu", "cpu"]
    assert assign_devices(None, jobs=2, default="cpu") == ["cpu", "cpu"]
    with pytest.raises(ValueError, match=r"device='cuda:7'"):
        assign_devices(("7",), jobs=2, default="auto")
    with pytest.raises(ValueError, match=r"jobs=0 must be an integer >= 1"):
        SearchConfig(jobs=0)


def test_the_search_script_runs_workers(tmp_path):  # spawned workers import the script again: it must be guarded
    script = Path(__file__).resolve().parents[1] / "scripts" / "search.py"
    done = subprocess.run([sys.executable, str(script), "--space", "tiny", "--trials", "2", "--max-epochs", "1",
                           "--jobs", "2", "--study", "w", "--results", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path}/w.db").trials
    assert sum(t.state in FINISHED for t in trials) == 2 and "2 workers on cpu" in done.stdout


def test_a_trial_reads_the_study_twice_writes_in_three_transactions_and_no_curve_without_a_pruner(tmp_path):
    """Every storage call costs every worker on the storage (about 1-4 ms on SQLite), so a trial keeps to
    Optuna's own waiting-trial read and one read shared in the objective, and writes its parameters and setup
    before training and its results with its state: with its creation, three transactions; the claimed
    trials are counted in the last."""
    config = SearchConfig(space="tiny", trials=4, max_epochs=2, pruner="none", results_dir=str(tmp_path), quiet=True)
    trainer = Trainer(load_task("digits", seed=0, cache_dir=tmp_path / "cache"), "cpu")
    study = load_search_study(config, "c", open_storage(f"sqlite:///{tmp_path}/c.db", heartbeat=True),
                              trainer.larger_is_better, seed=0)
    clock = StorageClock(study._storage)
    statements = Statements(study._storage._backend.engine)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # as a search sets it: Optuna's log line reads the best trial
    status = run_trials(study, load_space("tiny"), trainer, config, [], io.StringIO(), bar=False)
    reads = clock.count["get_all_trials"]
    assert status == "done" and len(study.trials) == 4
    assert reads <= 2 * 4 + 2  # and a look before the first trial and after the last
    assert statements.writes_to("trial_params", "trial_user_attributes") == 2 * 4
    assert len([tables for tables in statements.commits if tables != {"trial_heartbeats"}]) == 3 * 4  # beats: a thread's
    assert clock.count["set_trial_intermediate_value"] == 0  # the curve is recorded whole, as val_history
    assert clock.count["count_trials"] == 0  # claimed trials are counted in the transaction that ends each trial
    assert all(len(t.user_attrs["val_history"]) == 2 for t in study.trials)


def test_the_storage_looks_a_study_id_up_once_and_forgets_it_with_the_study(tmp_path, monkeypatch):
    optuna.create_study(storage=f"sqlite:///{tmp_path}/i.db", study_name="i")  # by another process
    storage = open_storage(f"sqlite:///{tmp_path}/i.db")
    looked_up = []
    real = optuna.storages.RDBStorage.get_study_id_from_name
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_study_id_from_name",
                        lambda self, name: looked_up.append(name) or real(self, name))
    made = storage.get_study_id_from_name("i")
    assert storage.get_study_id_from_name("i") == made and looked_up == ["i"]
    storage.delete_study(made)
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("i")


def test_more_cpu_workers_than_cores_get_one_thread_each_and_a_note(monkeypatch):
    monkeypatch.setattr(nas.workers, "_cores", lambda: 2)
    assert nas.workers.cpu_threads(["cpu"]) == 2 and nas.workers.crowding(["cpu", "cpu"]) is None
    assert nas.workers.cpu_threads(["cpu"] * 4) == 1
    assert nas.workers.crowding(["cpu"] * 4) == "note: 4 workers on the CPU share 2 cores; more workers than cores adds no speed"
