"""A seed gives the same search: the same candidates, and on the CPU the same curves and scores, run after run."""

from __future__ import annotations

import io

import optuna
import pytest

from nas.search.config import SearchConfig
from nas.search.record import RESULT
from nas.search.run import run_search

TIMINGS = {"latency_ms", "heartbeat", "train_seconds"}  # wall-clock measurements: the only things allowed to differ


def written(trial: optuna.trial.FrozenTrial) -> dict:
    """All a trial recorded, timings left out."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in TIMINGS}
    attrs[RESULT] = {k: v for k, v in attrs.get(RESULT, {}).items() if k not in TIMINGS}
    return {"state": trial.state, "params": trial.params, "values": trial.values,
            "curve": trial.intermediate_values, "attrs": attrs}


def search_twice(tmp_path, trials: int) -> tuple[list[dict], list[dict]]:
    runs = []
    for run in ("a", "b"):
        config = SearchConfig(space="tiny", trials=trials, max_epochs=4, study="same", results_dir=str(tmp_path / run),
                              quiet=True)
        outcome = run_search(config, out=io.StringIO())
        assert outcome.status == "done"
        runs.append([written(t) for t in optuna.load_study(study_name="same", storage=outcome.storage).trials])
    return runs[0], runs[1]


def test_the_same_seed_writes_identical_trials(tmp_path):
    first, second = search_twice(tmp_path, trials=8)
    assert {t["state"] for t in first} >= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert first == second


@pytest.mark.slow
def test_a_40_trial_search_writes_identical_trials(tmp_path):
    first, second = search_twice(tmp_path, trials=40)
    assert first == second
