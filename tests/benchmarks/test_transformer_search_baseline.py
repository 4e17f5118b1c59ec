"""The peer of the speed suite: TPE over a stock nn.TransformerEncoder, 30 epochs a trial by default, no pruning,
and each trial records the test accuracy of its best validation epoch."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from benchmarks import load_baseline

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "baselines" / "transformer_search.py"
PARAMS = {"d_model", "heads", "layers", "ff_mult", "dropout", "lr", "batch_size"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def peer():
    return load_baseline("transformer_search")


def test_the_peer_trains_30_epochs_a_trial_unless_told_otherwise(peer):
    assert peer.EPOCHS == 30
    assert inspect.signature(peer.search).parameters["epochs"].default == peer.EPOCHS


def test_a_tiny_peer_search_records_best_val_and_test_with_tpe_and_no_pruner(peer, tmp_path):
    url = f"sqlite:///{tmp_path / 'peer.db'}"
    study = peer.search("digits", trials=2, seed=0, epochs=2, storage=url, study_name="p")
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    trials = optuna.load_study(study_name="p", storage=url).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["best_val"] == trial.value == max(attrs["val_history"])
        assert attrs["epochs"] == len(attrs["val_history"]) == 2
        assert attrs["val_history"][attrs["best_epoch"] - 1] == attrs["best_val"]
        assert 0.0 <= attrs["test"] <= 1.0
        assert set(trial.params) == PARAMS and trial.params["d_model"] % trial.params["heads"] == 0


def test_test_accuracy_is_that_of_the_first_best_validation_epoch(peer, monkeypatch):
    # Training stamps the epoch into the head's bias; validation reads a script, the test the stamped epoch.
    val = [0.5, 0.8, 0.7, 0.8, 0.6]
    calls = []

    def stamp(model, train, optimizer, device):
        with torch.no_grad():
            model.head.bias.fill_(model.head.bias[0] + 1 if calls else 1)

    def scripted(model, data, device):
        epoch = int(model.head.bias[0])
        calls.append(epoch)
        return val[epoch - 1] if len(calls) <= len(val) else epoch / 100

    monkeypatch.setattr(peer, "train_epoch", stamp)
    monkeypatch.setattr(peer, "accuracy", scripted)
    trial = peer.search("digits", trials=1, epochs=len(val)).trials[0]
    assert trial.user_attrs["best_val"] == 0.8 and trial.user_attrs["best_epoch"] == 2
    assert trial.user_attrs["test"] == 0.02  # epoch 2's weights, not the last epoch's nor the later tie's
    assert calls == [1, 2, 3, 4, 5, 2]


def test_the_peer_refuses_a_zero_budget(peer):
    with pytest.raises(ValueError, match="epochs=0"):
        peer.search("digits", trials=1, epochs=0)


def test_the_peer_script_runs_standalone():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=SCRIPT.parent)
    assert done.returncode == 0, done.stderr
    assert "--epochs" in done.stdout and "(default: 30)" in done.stdout
