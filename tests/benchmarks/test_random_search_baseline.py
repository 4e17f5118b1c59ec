"""The hand-written baseline search runs on its own and stores its trials as the benchmark curves read them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from benchmarks import load_baseline

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "baselines" / "random_search.py"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_baseline_runs_two_trials_on_digits_and_stores_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'baseline.db'}"
    load_baseline("random_search").search("digits", trials=2, seed=0, max_epochs=1, storage=url, study_name="b")
    trials = optuna.load_study(study_name="b", storage=url).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        assert 0.0 <= trial.user_attrs["best_val"] <= 1.0
        assert trial.user_attrs["best_val"] == trial.value == max(trial.user_attrs["val_history"])
        assert set(trial.params) == {"d_model", "heads", "layers", "lr"}
        assert trial.params["d_model"] % trial.params["heads"] == 0


def test_baseline_refuses_a_zero_budget():
    with pytest.raises(ValueError, match="trials=0"):
        load_baseline("random_search").search("digits", trials=0)


def test_baseline_script_runs_standalone():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=SCRIPT.parent)
    assert done.returncode == 0, done.stderr
    assert "--trials" in done.stdout
