"""Crash recovery: a worker that dies leaves a RUNNING trial; it is failed once stale and its candidate runs again,
resuming from the checkpoint; a candidate whose retry dies too is failed as ``worker died twice``."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas.search.heartbeat
from nas.results.report.tables import trials_table
from nas.search.config import SearchConfig
from nas.search.heartbeat import DIED_TWICE, HEARTBEAT_ATTR, fail_stale
from nas.search.record import result_of
from nas.search.run import run_search
from nas.search.storage import open_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--space", "tiny", "--trials", "3", "--max-epochs", "3", "--pruner", "none", "--study", "k", "--quiet"]
STORAGES = {"sqlite": "sqlite:///{}/k.db", "journal": "journal:{}/k.log"}


@pytest.fixture(params=sorted(STORAGES))
def url(request, tmp_path) -> str:
    return STORAGES[request.param].format(tmp_path)


def _running_trial(study: optuna.Study, beat_age: float, **attrs) -> int:
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(HEARTBEAT_ATTR, time.time() - beat_age)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial.number


def test_a_stale_trial_is_failed_and_its_candidate_enqueued_once(url):
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="k")
    dead, alive = _running_trial(study, beat_age=100), _running_trial(study, beat_age=1)
    assert fail_stale(study, storage, study.get_trials(), grace=30) == [dead]
    assert fail_stale(study, storage, study.get_trials(), grace=30) == []  # nothing twice, nor the live one
    trials = study.get_trials()
    assert trials[dead].state == TrialState.FAIL and trials[alive].state == TrialState.RUNNING
    assert trials[dead].user_attrs["reason"].startswith("worker died: no heartbeat for 30 s")
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert len(retries) == 1 and retries[0].user_attrs["retry_of"] == dead
    retry = study.ask()  # the next claim takes the enqueued candidate, with the dead trial's parameters
    assert retry.number == retries[0].number and retry.suggest_float("x", 0, 1) == trials[dead].params["x"]


def test_a_portfolio_entry_s_retry_is_still_that_entry(url):
    """Its retry keeps the entry's name, so it too trains unpruned and the report still finds the hand-made model."""
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="k")
    dead = _running_trial(study, beat_age=100, portfolio="transformer-32x2")
    fail_stale(study, storage, study.get_trials(), grace=30)
    retry = next(t for t in study.get_trials() if t.state == TrialState.WAITING)
    assert retry.user_attrs == {"retry_of": dead, "portfolio": "transformer-32x2"}


def test_a_retry_whose_worker_dies_too_is_failed_for_good(url):
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="k")
    number = _running_trial(study, beat_age=100, retry_of=0)
    assert fail_stale(study, storage, study.get_trials(), grace=30) == [number]
    trials = study.get_trials()
    assert trials[number].user_attrs["reason"] == DIED_TWICE
    assert not [t for t in trials if t.state == TrialState.WAITING]  # not run a third time: the study goes on


def test_a_killed_worker_s_trial_is_retried_from_its_checkpoint(tmp_path, monkeypatch, url):
    # The worker holds trial 1 once its first checkpoint is on disk, so the kill lands mid-trial however fast
    # the machine: a tiny trial takes about 0.1 s, shorter than a poll could be trusted to catch.
    code = ("import sys, time, nas.search.heartbeat, nas.search.objective as o; nas.search.heartbeat.HEARTBEAT_SECONDS = 1; "
            "o.CHECKPOINT_SECONDS = 0; save = o.save_checkpoint\n"
            "def save_then_hold(path, state):\n"
            "    save(path, state)\n"
            "    if path.name == 'trial_1.pt': time.sleep(120)\n"
            "o.save_checkpoint = save_then_hold\n"
            "from nas.cli import search_main; sys.exit(search_main(sys.argv[1:]))")
    worker = subprocess.Popen([sys.executable, "-c", code, *ARGS, "--results", str(tmp_path), "--storage", url],
                              cwd=ROOT)
    checkpoint = tmp_path / "k" / "checkpoints" / "trial_1.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)  # after epoch 1 of trial 1: no cleanup runs
    worker.wait()
    assert checkpoint.exists()
    before = optuna.load_study(study_name="k", storage=open_storage(url)).trials
    done_before = [(t.number, t.params, t.value, result_of(t)["val_history"]) for t in before if t.state in FINISHED]
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    monkeypatch.setattr(nas.search.heartbeat, "HEARTBEAT_SECONDS", 1)
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    outcome = run_search(SearchConfig(space="tiny", trials=3, max_epochs=3, pruner="none", study="k", storage=url,
                                      results_dir=str(tmp_path), quiet=True), out=io.StringIO())
    study = optuna.load_study(study_name="k", storage=open_storage(url))
    trials = study.trials
    assert outcome.status == "done" and sum(t.state in FINISHED for t in trials) == 3
    assert [(t.number, t.params, t.value, result_of(t)["val_history"]) for t in trials
            if t.state in FINISHED and t.number < 2] == done_before
    assert trials[1].state == TrialState.FAIL
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 1)
    reason = trials_table(study).set_index("trial")["reason"][1]
    assert reason.startswith("worker died") and reason.endswith(f"as trial {retry.number}")
    assert retry.state in FINISHED and retry.params == before[1].params
    assert result_of(retry)["resumed_from_epoch"] >= 1 and result_of(retry)["epochs"] == 3
    assert not list((tmp_path / "k" / "checkpoints").glob("*.pt"))
