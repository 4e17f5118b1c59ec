"""Several worker processes on one study: exact totals on SQLite, PostgreSQL and a journal file, and the mistakes
refused."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas.search.objective
import nas.search.workers
from nas.cli import search_main
from nas.search.space import load_space
from nas.search.config import SearchConfig
from nas.search.budget import plan_budget
from nas.search.study import StudyError, load_search_study
from nas.search.storage import open_storage
from nas.search.loop import run_trials
from nas.search.record import result_of
from nas.search.run import run_search
from nas.data import load_task
from nas.training.trainer import Trainer
from nas.search.workers import assign_devices

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def search_with_workers(tmp_path, jobs: int, trials: int, **changes):
    config = SearchConfig(space="tiny", trials=trials, max_epochs=1, jobs=jobs, results_dir=str(tmp_path),
                          quiet=True, study="w", **changes)
    out = io.StringIO()
    outcome = run_search(config, out=out)
    return outcome, optuna.load_study(study_name="w", storage=open_storage(outcome.storage)).trials, out.getvalue()


def assert_exact_total(outcome, trials, total: int) -> None:
    assert outcome.status == "done" and outcome.finished == total
    assert sum(t.state in FINISHED for t in trials) == total
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    for trial in trials:  # only surplus trials fail, and they never trained
        assert trial.state in FINISHED or (trial.state == TrialState.FAIL and trial.user_attrs["reason"] == "surplus")
        assert trial.state in FINISHED or "val_history" not in result_of(trial)
    assert len({result_of(t)["seed"] for t in trials if t.state in FINISHED}) == total


def test_four_workers_on_sqlite_end_with_exactly_the_requested_trials(tmp_path):
    outcome, trials, text = search_with_workers(tmp_path, jobs=4, trials=8)
    assert_exact_total(outcome, trials, 8)
    assert "locked" not in text and "4 workers on cpu" in text
    assert outcome.storage.startswith("sqlite:///")


def test_three_workers_on_postgresql_end_with_exactly_the_requested_trials(tmp_path, postgres_url):
    outcome, trials, _ = search_with_workers(tmp_path, jobs=3, trials=6, storage=postgres_url)
    assert_exact_total(outcome, trials, 6)


def test_three_workers_on_a_journal_file_end_with_exactly_the_requested_trials(tmp_path):
    outcome, trials, _ = search_with_workers(tmp_path, jobs=3, trials=6, storage=f"journal:{tmp_path}/w.log")
    assert_exact_total(outcome, trials, 6)


def test_a_trial_is_surplus_when_finished_and_running_trials_ahead_reach_the_total(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    running = study.ask()  # a worker's trial in hand, ahead of the next one
    trials = study.get_trials()
    assert nas.search.objective.is_surplus(trials, running.number + 1, total=2)
    assert not nas.search.objective.is_surplus(trials, running.number + 1, total=3)
    assert not nas.search.objective.is_surplus(trials, running.number, total=2)  # a trial does not count itself


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
    script = Path(__file__).resolve().parents[2] / "scripts" / "search.py"
    done = subprocess.run([sys.executable, str(script), "--space", "tiny", "--trials", "2", "--max-epochs", "1",
                           "--jobs", "2", "--study", "w", "--results", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path}/w.db").trials
    assert sum(t.state in FINISHED for t in trials) == 2 and "2 workers on cpu" in done.stdout


def test_a_trial_reads_the_study_once_and_writes_few_attributes(tmp_path, monkeypatch):
    """Every storage call costs every worker on the storage, so the objective's checks (surplus, duplicates, stale
    trials, best weights, the loop's stop and failure checks) share one read of the study per trial."""
    config = SearchConfig(space="tiny", trials=4, max_epochs=2, pruner="none", results_dir=str(tmp_path), quiet=True)
    task = load_task("digits", seed=0, cache_dir=tmp_path / "cache")
    trainer, budget = Trainer(task, "cpu"), plan_budget(task, config, load_space("tiny").largest_batch())
    storage = open_storage(f"sqlite:///{tmp_path}/c.db")
    study = load_search_study(config, "c", storage, trainer.larger_is_better, seed=0, budget=budget)
    reads, writes = [], []
    real_read, real_write = optuna.Study.get_trials, optuna.Trial.set_user_attr
    monkeypatch.setattr(optuna.Study, "get_trials", lambda self, *a, **k: reads.append(1) or real_read(self, *a, **k))
    monkeypatch.setattr(optuna.Trial, "set_user_attr",
                        lambda self, key, value: writes.append(key) or real_write(self, key, value))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    status = run_trials(study, storage, load_space("tiny"), trainer, config, [], io.StringIO(), bar=False, budget=budget)
    read_count = len(reads)
    assert status == "done" and len(study.trials) == 4
    assert read_count <= 4 + 2  # one per trial, and the loop's look before the first and after the last
    per_trial = [key for key in writes if key not in ("heartbeat", "weights")]
    assert sorted(set(per_trial)) == ["arch", "best_val", "flops", "latency_ms", "params", "result", "summary", "test"]
    assert len(per_trial) == 8 * 4
    assert all(len(result_of(t)["val_history"]) == 2 for t in study.trials)
    assert all(not t.intermediate_values for t in study.trials)  # no pruner: the curve is recorded whole


def test_more_cpu_workers_than_cores_get_one_thread_each_and_a_note(monkeypatch):
    monkeypatch.setattr(nas.search.workers, "_cores", lambda: 2)
    assert nas.search.workers.cpu_threads(["cpu"]) == 2 and nas.search.workers.crowding(["cpu", "cpu"]) is None
    assert nas.search.workers.cpu_threads(["cpu"] * 4) == 1
    assert nas.search.workers.crowding(["cpu"] * 4) == "note: 4 workers on the CPU share 2 cores; more workers than cores adds no speed"


def test_workers_through_the_grpc_storage_proxy_end_with_exactly_the_requested_trials(tmp_path):
    """Workers on other machines share one database through Optuna's proxy, as the README shows."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database = f"sqlite:///{tmp_path}/proxied.db"
    proxy = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "storage_proxy.py"),
                              "--storage", database, "--host", "127.0.0.1", "--port", str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in proxy.stdout.readline()
        for _ in range(100):  # the server listens a moment after it says so
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        outcome, trials, _ = search_with_workers(tmp_path, jobs=2, trials=4, storage=f"grpc://127.0.0.1:{port}")
        assert_exact_total(outcome, trials, 4)
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    direct = optuna.load_study(study_name="w", storage=database).trials  # written by the proxy, to the database
    assert sum(t.state in FINISHED for t in direct) == 4
