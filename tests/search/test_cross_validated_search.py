"""A search on small data scores each candidate by k-fold cross-validation and records the folds."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import optuna
import pytest

from nas.cli import export_main, search_main
from nas.search.config import SearchConfig
from nas.search.record import BEST_VAL, REASON, RESULT, result_of, scored_by_spike
from nas.results.report.writer import write_report
from nas.search.run import run_search
from nas.training import cross_validation, trainer as trainer_module
from tests.training.test_trainer import tick


def small_file(tmp_path, n: int = 40) -> str:
    """Two classes of 8-step series, told apart by the sign of their mean; 10 test series."""
    rng = np.random.default_rng(0)
    y = np.arange(n + 10) % 2
    x = rng.normal(size=(n + 10, 8, 1)) + np.where(y, 1.0, -1.0)[:, None, None]
    np.savez(tmp_path / "small.npz", X_train=x[:n], y_train=y[:n], X_test=x[n:], y_test=y[n:])
    return f"file:{tmp_path / 'small.npz'}"


def test_small_data_is_scored_by_the_mean_of_five_folds(tmp_path):
    out = io.StringIO()
    outcome = run_search(SearchConfig(task=small_file(tmp_path), space="tiny", trials=2, max_epochs=8,
                                      pruner="none", study="cv", results_dir=str(tmp_path), quiet=True), out=out)
    assert outcome.status == "done" and "5-fold cross-validation" in out.getvalue()
    for trial in optuna.load_study(study_name="cv", storage=outcome.storage).trials:
        record = result_of(trial)
        cv = record["cv"]
        assert cv["folds"] == 5 and len(cv["values"]) == 5 and len(cv["tests"]) == 5
        assert len(cv["losses"]) == 5 and all(loss > 0 for loss in cv["losses"])  # the tie-break among perfect folds
        assert trial.user_attrs[BEST_VAL] == pytest.approx(np.mean(cv["values"])) == trial.value
        assert cv["std"] == pytest.approx(np.std(cv["values"]))
        assert record["budget"] == {"epochs": 8, "min_epochs": 1, "train_samples": 32, "max_batch": 8, "folds": 5}
        assert record["train"]["batch_size"] == 8 and record["steps"] == 8 * 5 * 4


def test_a_trial_its_time_limit_would_cut_records_the_schedule_it_fitted(tmp_path, monkeypatch):
    """The clock reads one second a look: five folds of four batches take about 21 s an epoch."""
    tick(monkeypatch, trainer_module, cross_validation)
    outcome = run_search(SearchConfig(task=small_file(tmp_path), space="tiny", trials=1, max_epochs=40,
                                      trial_timeout=250, pruner="none", study="fit", results_dir=str(tmp_path),
                                      quiet=True), out=io.StringIO())
    trial = optuna.load_study(study_name="fit", storage=outcome.storage).trials[0]
    record = result_of(trial)
    assert trial.state.name == "COMPLETE" and record["train"]["max_epochs"] == 40
    assert 5 <= record["schedule_epochs"] < 12 and record["epochs"] == record["schedule_epochs"]
    reason = f"schedule fitted to {record['schedule_epochs']} of 40 epochs by the time limit of 250s"
    assert trial.user_attrs[REASON] == reason


@pytest.mark.parametrize("argv, message", [
    (["--folds", "1"], "search.py: error: folds=1 must be an integer >= 2"),
    (["--folds", "21"], "search.py: error: folds=21 is more than the 20 samples of class '0'"),
])
def test_a_fold_count_the_data_cannot_give_is_one_line_and_touches_nothing(tmp_path, capsys, argv, message):
    code = search_main(["--task", small_file(tmp_path), "--space", "tiny", "--trials", "1", "--results",
                        str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not list((tmp_path / "results").glob("*.db"))


def test_resuming_a_study_scored_by_single_epoch_peaks_says_so(tmp_path, capsys):
    """Trials recorded before the trailing mean (no ``smoothing`` in their record) rank above today's for the same
    curve; resuming such a study, reporting it and exporting from it name them."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    config = SearchConfig(task=small_file(tmp_path), space="tiny", trials=1, max_epochs=40, pruner="none", folds=2,
                          study="now", storage=storage, results_dir=str(tmp_path), quiet=True)
    run_search(config, out=io.StringIO())
    now = optuna.load_study(study_name="now", storage=storage)
    trial, record = now.trials[0], result_of(now.trials[0])
    assert record["cv"]["smoothing"] == 2 and scored_by_spike(now.trials) is None  # a twentieth of 40 epochs
    older = optuna.create_study(study_name="older", storage=storage, direction="maximize")
    for key, value in now.user_attrs.items():
        older.set_user_attr(key, value)
    cv = {k: v for k, v in record["cv"].items() if k != "smoothing"}
    older.add_trial(optuna.trial.create_trial(params=trial.params, distributions=trial.distributions,
                                              value=trial.value,
                                              user_attrs={**trial.user_attrs, RESULT: {**record, "cv": cv}}))
    out = io.StringIO()
    run_search(replace(config, trials=2, study="older"), out=out)
    assert "note: 1 trial(s) of this study (0) were scored by an older version" in out.getvalue()
    report = write_report(optuna.load_study(study_name="older", storage=storage), tmp_path / "report",
                          results_dir=str(tmp_path), baselines=False)
    assert any(note.startswith("1 trial(s) of this study (0) were scored") for note in report.notes)
    assert export_main(["--study", "older", "--storage", storage, "--results", str(tmp_path), "--search-weights",
                        "--out", str(tmp_path / "best")]) == 0
    assert "note: 1 trial(s) of this study (0) were scored" in capsys.readouterr().out


def test_only_long_cross_validated_trials_without_a_smoothing_record_are_named():
    """Under 40 epochs both rules pick the same epoch, and a trial not cross-validated was never smoothed."""
    def trial(number: int, record: dict) -> optuna.trial.FrozenTrial:
        made = optuna.trial.create_trial(value=0.5, user_attrs={RESULT: record})
        made.number = number
        return made

    trials = [trial(0, {"cv": {}, "train": {"max_epochs": 60}}), trial(1, {"cv": {}, "train": {"max_epochs": 20}}),
              trial(2, {"cv": {"smoothing": 3}, "train": {"max_epochs": 60}}), trial(3, {"train": {"max_epochs": 60}})]
    assert scored_by_spike(trials).startswith("1 trial(s) of this study (0) were scored")
    assert scored_by_spike(trials[1:]) is None
