"""Crash recovery: a worker SIGKILLed mid-epoch; the rerun fails its trial as stale and resumes it mid-trial."""

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

import nas.trial_loop
from nas.report.tables import trials_table
from nas.study import SearchConfig, run_search

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--space", "tiny", "--trials", "3", "--max-epochs", "3", "--pruner", "none", "--study", "k", "--quiet"]


@pytest.mark.slow  # about a minute: a worker that trains, is killed, and a rerun
def test_a_killed_worker_s_trial_is_retried_from_its_checkpointed_epoch(tmp_path, monkeypatch):
    code = ("import sys, nas.trial_loop; nas.trial_loop.HEARTBEAT_SECONDS = 1; from nas.cli import search_main; "
            "sys.exit(search_main(sys.argv[1:]))")
    worker = subprocess.Popen([sys.executable, "-c", code, *ARGS, "--results", str(tmp_path)], cwd=ROOT)
    checkpoint = tmp_path / "k" / "checkpoints" / "trial_1.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)  # mid-epoch 2 of trial 1: no cleanup runs
    worker.wait()
    assert checkpoint.exists()
    url = f"sqlite:///{tmp_path}/k.db"
    before = optuna.load_study(study_name="k", storage=url).trials
    done_before = [(t.number, t.params, t.value, t.user_attrs["val_history"]) for t in before if t.state in FINISHED]
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    monkeypatch.setattr(nas.trial_loop, "HEARTBEAT_SECONDS", 1)
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    outcome = run_search(SearchConfig(space="tiny", trials=3, max_epochs=3, pruner="none", study="k",
                                      results_dir=str(tmp_path), quiet=True), out=io.StringIO())
    trials = optuna.load_study(study_name="k", storage=url).trials
    assert outcome.status == "done" and sum(t.state in FINISHED for t in trials) == 3
    assert [(t.number, t.params, t.value, t.user_attrs["val_history"]) for t in trials
            if t.state in FINISHED and t.number < 2] == done_before
    assert trials[1].state == TrialState.FAIL
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 1)
    reason = trials_table(optuna.load_study(study_name="k", storage=url)).set_index("trial")["reason"][1]
    assert reason.startswith("stale") and reason.endswith(f"retried as trial {retry.number}")
    assert retry.state in FINISHED and retry.params == before[1].params
    assert retry.user_attrs["resumed_from_epoch"] >= 1 and retry.user_attrs["epochs"] == 3
    assert not list((tmp_path / "k" / "checkpoints").glob("*.pt"))
