"""Multi-objective search: accuracy against a cost, pruned on the accuracy curve, ending with a Pareto front."""

from __future__ import annotations

import io
import warnings

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nas.search.record import result_of
from nas.cli import search_main
from nas.search.curve_pruning import shadow_name
from nas.search.pareto import pareto_mask
from nas.results.study import resolve_study
from nas.search.config import SearchConfig
from nas.search.study import StudyError
from nas.search.run import run_search


def search(tmp_path, **changes):
    settings = {"space": "tiny", "trials": 8, "max_epochs": 4, "results_dir": str(tmp_path), "quiet": True,
                "objectives": ("accuracy", "params"), **changes}
    out = io.StringIO()
    outcome = run_search(SearchConfig(**settings), out=out)
    return outcome, out.getvalue()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    outcome, text = search(root)
    return root, outcome, text, optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)


def test_a_multi_objective_search_prunes_and_ends_with_a_pareto_front(searched):
    _, outcome, text, study = searched
    trials = study.get_trials()
    assert outcome.finished == 8 and study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["accuracy", "params"]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(result_of(t)["epochs"] < 4 for t in pruned)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for trial in complete:
        assert trial.values == [trial.user_attrs["best_val"], trial.user_attrs["params"]]
    front = [t.number for t, keep in zip(complete, pareto_mask([t.values for t in complete], [True, False])) if keep]
    assert front and f"Pareto front over accuracy, params: {len(front)} of 8 finished trials" in text
    rows = text.split("Pareto front")[1].split("\n\n")[0].splitlines()[2:]
    shown = {int(line.split()[0]) for line in rows}
    assert shown == set(front)


def test_the_pruner_saw_every_trials_accuracy_curve(searched):
    _, outcome, _, study = searched
    shadow = optuna.load_study(study_name=shadow_name(outcome.study_name), storage=outcome.storage)
    twins = {t.user_attrs["trial"]: t for t in shadow.get_trials()}
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        twin = twins[trial.number]
        assert twin.state == trial.state
        curve = [twin.intermediate_values[epoch] for epoch in sorted(twin.intermediate_values)]
        assert curve == result_of(trial)["val_history"]


def test_report_and_export_see_the_study_and_not_its_shadow(searched):
    root, outcome, _, _ = searched
    storage = outcome.storage
    assert resolve_study(None, storage, root) == (outcome.study_name, storage)


def test_resuming_with_other_objectives_is_refused_and_rerunning_runs_nothing(searched):
    root, outcome, _, study = searched
    before = [(t.number, t.state, t.values) for t in study.get_trials()]
    with pytest.raises(StudyError, match=r"made with objectives accuracy,params, not accuracy,flops; "
                                         r"rerun with --objectives accuracy,params"):
        search(root, objectives=("accuracy", "flops"))
    again, text = search(root)
    assert again.status == "already_done" and "nothing to run" in text
    assert [(t.number, t.state, t.values) for t in study.get_trials()] == before


@pytest.mark.parametrize("objectives,message", [
    (("accuracy", "memory"), r"objective 'memory' is unknown; allowed: accuracy, mse, params, flops, latency"),
    (("params", "flops"), r"objectives=params,flops must name the task metric \(accuracy or mse\) exactly once"),
    (("accuracy", "params", "params"), r"objectives=accuracy,params,params names one objective twice"),
])
def test_objective_mistakes_are_refused(objectives, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(objectives=objectives)


def test_the_metric_must_be_the_tasks_and_the_cli_says_so(tmp_path, capsys):
    code = search_main(["--space", "tiny", "--trials", "1", "--objectives", "mse,latency", "--results", str(tmp_path)])
    assert code == 2
    assert ("objectives=mse,latency name 'mse', but task 'digits' is measured by 'accuracy'; use accuracy,latency"
            in capsys.readouterr().err)
    assert not list(tmp_path.glob("*.db"))


def test_naming_the_objectives_warns_nothing(tmp_path):
    """Optuna flags ``set_metric_names`` as experimental; a user's multi-objective search should not print that."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search(tmp_path, trials=1, max_epochs=1)
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
