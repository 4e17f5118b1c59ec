"""A quick quality run on the smallest UCR set, and the choices behind it: baseline size, tasks, verdicts."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from benchmarks import quality, run_suite
from benchmarks.quality import (PARAM_TOLERANCE, Budget, PUBLISHED, TASKS, _baseline_params, attention_row,
                                    baseline_sizes, budget_for, chosen_tasks, reference_row)
from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec

COLUMNS = ["task", "trials_run", "search_s", "params", "test_acc", "test_std", "final_epochs", "final_steps",
           "baseline_params", "baseline_test_acc", "baseline_test_std", "beats_transformer", "minirocket_test_acc",
           "within_3_of_minirocket", "winner_is_portfolio", "cross_validated",
           *PUBLISHED, "best_published", "gap_to_best_published", "attention_types", "budget",
           "machine"]


def test_quick_quality_run_on_italy_power_demand(tmp_path, capsys):
    table = run_suite("quality", tmp_path, device="cpu", quick=True, tasks=("ItalyPowerDemand",), seed=1)
    progress = capsys.readouterr().err.splitlines()  # each stage says where the run is as it ends
    assert progress[0].startswith("quality 1/1 ucr:ItalyPowerDemand: 1 min of search")
    assert [line.split(":")[0].strip() for line in progress[1:]] == ["search", "final model", "peers"]
    written = pd.read_csv(tmp_path / "quality_seed1.csv")  # beside, not over, the seed-0 table
    assert set(COLUMNS) <= set(written.columns)
    row = written.iloc[0]
    assert row["task"] == "ucr:ItalyPowerDemand" and row["trials_run"] == 2 and row["search_s"] > 0
    assert row["seed"] == 1  # the study was seeded as asked: a rerun with another seed is another draw
    for column in ("test_acc", "baseline_test_acc", "minirocket_test_acc", *PUBLISHED):
        assert 0 <= row[column] <= 1, column
    assert row["InceptionTime"] > 0.9 and row["HIVE-COTE 2"] > 0.9  # the published results aeon ships
    assert row["beats_transformer"] == (row["test_acc"] > row["baseline_test_acc"])
    assert row["cross_validated"]  # 67 series: scored by 5-fold cross-validation
    assert row["gap_to_best_published"] == pytest.approx(row["test_acc"] - max(row[m] for m in PUBLISHED))
    assert abs(row["baseline_params"] / row["params"] - 1) <= PARAM_TOLERANCE
    assert row["budget"] == budget_for(True, None, None, seed=1).describe()
    export = tmp_path / "quality" / "ucr-ItalyPowerDemand"
    assert (export / "arch.json").is_file()  # the export itself
    kept = optuna.load_study(study_name="quality-ucr-ItalyPowerDemand", storage=f"sqlite:///{export / 'study.db'}")
    assert len(kept.trials) >= row["trials_run"] and kept.user_attrs["seed"] == 1  # the draw's study outlives its run
    assert kept.trials[row["winner_trial"]].user_attrs["arch"]
    assert (tmp_path / "quality_seed1.png").stat().st_size > 10_000 and not (tmp_path / "quality.csv").exists()
    assert len(table) == 1
    assert "prefers_softmax" not in written.columns  # the softmax verdict belongs to mqar rows alone


def test_each_task_is_on_disk_before_the_next_starts(tmp_path, monkeypatch):
    """A run of hours that dies in its last task keeps the tasks it finished."""
    plotted = {column: 0.5 for column in ("test_acc", "test_std", "ensemble_test_acc", "baseline_test_acc",
                                          "baseline_test_std", "baseline_ensemble_test_acc", "minirocket_test_acc",
                                          *PUBLISHED)}

    def task_row(name, budget, work, export_dir, device):
        if name == "ucr:GunPoint":
            written = pd.read_csv(tmp_path / "quality.csv")
            assert list(written["task"]) == ["ucr:ItalyPowerDemand"]
            raise MemoryError("killed in the second task")
        return {"task": name, "trials_run": 3, "search_s": 60.0, **plotted}

    monkeypatch.setattr(quality, "task_row", task_row)
    with pytest.raises(MemoryError):
        run_suite("quality", tmp_path, device="cpu", tasks=("ItalyPowerDemand", "GunPoint"))
    kept = pd.read_csv(tmp_path / "quality.csv")
    assert list(kept["task"]) == ["ucr:ItalyPowerDemand"] and kept["machine"].notna().all()
    assert (tmp_path / "quality.png").is_file()


@pytest.mark.parametrize("target", [600, 5_000, 80_000, 1_000_000])
def test_the_baseline_is_sized_within_tolerance_and_keeps_the_patch(target):
    spec = InputSpec(seq_len=427, num_outputs=6, features=1)
    sizes = baseline_sizes(spec, target, depth=2, patch=4)
    params = _baseline_params(spec, sizes["d_model"], sizes["layers"], sizes["ff_mult"], patch=4)
    assert abs(params / target - 1) <= PARAM_TOLERANCE
    assert sizes["d_model"] % 4 == 0  # 4 heads


def test_tasks_take_short_ucr_names_and_refuse_others_by_name():
    assert chosen_tasks(("GunPoint", "mqar"), quick=False) == ("ucr:GunPoint", "mqar:pairs=4,n_train=10000")  # Zoology's smallest
    assert chosen_tasks(None, quick=False) == TASKS
    with pytest.raises(ValueError, match=r"task 'ucr:Coffee' is not in the quality suite; allowed: ucr:ArrowHead"):
        chosen_tasks(("ucr:Coffee",), quick=False)


def test_budget_options_override_the_defaults():
    assert budget_for(False, None, None) == Budget(100_000, 600.0, "timeseries", None)
    assert budget_for(False, 5, 0.5) == Budget(5, 30.0, "timeseries", None)
    assert budget_for(False, None, None, seeds=10) == Budget(100_000, 600.0, "timeseries", None, seeds=10)
    assert budget_for(False, None, None, seed=7) == Budget(100_000, 600.0, "timeseries", None, seed=7)
    quick = ("1 min of search (or 2 trials), space tiny, max 2 epochs, at most 15 s of training a trial, seed 0; "
             "final model: top 1 x 1 seeds")
    assert budget_for(True, None, None).describe() == quick


def test_missing_references_give_nan_rather_than_a_made_up_gap():
    row = reference_row({}, 0.8)  # the multivariate sets: aeon ships no results for them
    assert all(math.isnan(row[k]) for k in (*PUBLISHED, "best_published", "gap_to_best_published"))
    published = {"InceptionTime": 0.9, "HIVE-COTE 2": 0.95}
    assert reference_row(published, 0.8)["gap_to_best_published"] == pytest.approx(-0.15)


class _Trial:
    def __init__(self, spec: ArchSpec, value: float):
        self.user_attrs = {"arch": spec.to_json(), "best_val": value}


class _Study:
    def __init__(self, trials):
        self.trials = trials

    def get_trials(self, deepcopy, states):
        return self.trials


def _spec(*types: str) -> ArchSpec:
    return ArchSpec(16, tuple(BlockSpec(MixerSpec("single", (AttentionSpec(t, 2),))) for t in types))


def test_the_softmax_verdict_compares_all_linear_trials_with_softmax_ones():
    soft, linear, mixed = _spec("dot"), _spec("linear", "linear"), _spec("linear", "cosine")
    row = attention_row(_Study([_Trial(soft, 0.9), _Trial(linear, 0.4), _Trial(mixed, 0.6)]), soft)
    assert (row["softmax_trials"], row["linear_trials"]) == (2, 1)
    assert (row["best_softmax_val"], row["best_linear_val"], row["prefers_softmax"]) == (0.9, 0.4, True)
    row = attention_row(_Study([_Trial(soft, 0.3), _Trial(linear, 0.4)]), linear)
    assert row["prefers_softmax"] is False and "NOT" in row["note"]
    assert row["attention_types"] == "linear"


def test_with_no_all_linear_trial_the_best_trials_types_decide_and_the_note_says_so():
    row = attention_row(_Study([_Trial(_spec("dot"), 0.9)]), _spec("dot"))
    assert row["prefers_softmax"] is True and math.isnan(row["best_linear_val"])
    assert row["note"] == "no all-linear trial completed: the best trial's types decide"


@pytest.mark.slow
def test_a_short_search_on_gunpoint_beats_a_fixed_stock_transformer(tmp_path):
    """Three minutes of search, then the final model (3 seeds), against nn.TransformerEncoder of the same size
    trained with the same recipe, epochs and seeds on the same split."""
    table = run_suite("quality", tmp_path, device="cpu", minutes=3, tasks=("GunPoint",))
    row = table.iloc[0]
    assert row["test_acc"] > row["baseline_test_acc"], row[["test_acc", "baseline_test_acc"]].to_dict()
