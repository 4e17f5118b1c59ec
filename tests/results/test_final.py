"""The final model: top candidates rescored on validation, the winner retrained on train + validation per seed."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import pytest
import torch

import nas.training.trainer
from nas import CompositeModel, SeedEnsemble, load_model
from nas.cli import export_main
from nas.data import load_task
from nas.results.export import export_trial
from nas.results.final import Candidate, final_model, final_seeds, pick_winner, top_candidates
from nas.training.trainer import TrainConfig
from tests.support.studies import hand_study, tiny_study


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def task():
    return load_task("digits", seed=0)


@pytest.fixture(scope="module")
def final(tiny, task):
    lines: list[str] = []
    return final_model(tiny.load(), task, top_k=3, seeds=2, device="cpu", progress=lines.append), lines


def test_the_retrain_steps_follow_the_merged_set(final, task):
    done, _ = final
    merged = len(task.train) + len(task.val)
    assert done.merged_samples == merged
    assert done.steps == done.config.max_epochs * math.ceil(merged / done.config.batch_size)
    assert done.steps_taken == [done.steps] * 2  # counted by the optimiser, not computed


def test_every_distinct_complete_candidate_is_rescored_over_the_seeds(final, tiny):
    done, _ = final
    complete = [t for t in tiny.load().trials if t.state.name == "COMPLETE"]
    assert {c.trial.number for c in done.candidates} == {t.number for t in complete}
    for c in done.candidates:
        assert c.scored_by == "validation" and len(c.values) == 2
    assert done.winner.score_mean == max(c.score_mean for c in done.candidates)
    assert done.seeds == final_seeds(0, 2) and len(done.test_per_seed) == 2


def test_progress_names_the_run_seed_epoch_and_time_left(final):
    _, lines = final
    assert any(line.startswith("selection run 1/") for line in lines)
    assert any(line.startswith("final run") and "left" in line for line in lines)
    assert all("seed" in line and "epoch" in line for line in lines)


def test_the_same_call_gives_the_same_scores(tiny, task):
    first, again = (final_model(tiny.load(), task, top_k=1, seeds=1, device="cpu") for _ in range(2))
    assert first.test_per_seed == again.test_per_seed and first.candidates[0].values == again.candidates[0].values


def cv_row(best_val: float, test: float, lr: float, augment: str = "none") -> dict:
    train = asdict(TrainConfig(lr=lr, max_epochs=2, batch_size=256, augment=augment))
    result = {"train": train, "best_epoch": 1, "cv": {"folds": 5, "std": 0.01, "values": [best_val] * 5}}
    return {"values": [best_val], "best_val": best_val, "test": test, "result": result}


def test_cross_validated_candidates_keep_their_fold_mean_and_test_never_decides(task, monkeypatch):
    fits = []
    real_fit = nas.training.trainer.Trainer.fit
    monkeypatch.setattr(nas.training.trainer.Trainer, "fit",
                        lambda self, *a, **k: fits.append(len(self.train)) or real_fit(self, *a, **k))
    study = hand_study([cv_row(0.90, 0.50, 1e-3), cv_row(0.85, 0.99, 2e-3)])
    done = final_model(study, task, top_k=2, seeds=2, device="cpu")
    assert [c.scored_by for c in done.candidates] == ["cv", "cv"]
    assert done.winner.trial.number == 0  # the best fold mean, though the other tested better
    assert fits == [len(task.train) + len(task.val)] * 2  # only the final runs trained, on the merged set
    assert done.config.max_epochs == 1  # the recorded best epoch


def test_the_same_model_trained_with_and_without_augmentation_is_two_candidates():
    study = hand_study([cv_row(0.90, 0.9, 1e-3), cv_row(0.88, 0.9, 1e-3, "scale_jitter_slice"),
                        cv_row(0.85, 0.9, 1e-3)])
    assert [t.number for t in top_candidates(study, 3)] == [0, 1]


def test_a_cross_validated_winner_retrains_for_its_recorded_retrain_length(task):
    row = cv_row(0.9, 0.9, 1e-3)
    row["result"]["train"]["max_epochs"] = 3
    row["result"]["cv"]["retrain_epochs"] = 3  # best epoch 1, but epoch 3 within noise of it
    done = final_model(hand_study([row]), task, top_k=1, seeds=1, device="cpu")
    assert done.winner.epochs == 3 and done.config.max_epochs == 3


def cv_candidates(*rows: tuple, scored_by: str = "cv") -> list[Candidate]:
    """One candidate per (fold values, parameter count[, mean fold validation loss])."""
    trials = hand_study([{"values": [sum(row[0]) / len(row[0])], "params": row[1]} for row in rows]).trials
    return [Candidate(t, sum(row[0]) / len(row[0]), 0.0, scored_by, 1, row[0], *row[2:]) for t, row in zip(trials, rows)]


def test_the_smallest_candidate_within_one_standard_error_of_the_best_wins():
    best = [0.6, 0.8, 1.0, 0.8, 0.8]  # mean 0.80, standard error 0.063
    close, far = [0.7, 0.8, 0.9, 0.7, 0.75], [0.7, 0.7, 0.7, 0.7, 0.7]  # 0.77 and 0.70
    winner, how = pick_winner(cv_candidates((best, 5000), (close, 1000), (far, 10)))
    assert winner.trial.number == 1 and how.startswith("fewest parameters within one standard error (0.0632)")
    winner, _ = pick_winner(cv_candidates((best, 5000), (far, 10)))
    assert winner.trial.number == 0  # outside the noise: the best mean stands


def test_candidates_right_on_every_fold_are_told_apart_by_their_validation_loss():
    perfect = [1.0] * 5
    winner, how = pick_winner(cv_candidates((perfect, 5000, 0.02), (perfect, 1000, 0.09), ([0.9] * 5, 10, 0.01)))
    assert winner.trial.number == 0  # the lowest loss of the two tied at 1.0, though the larger
    assert how == "lowest mean fold validation loss among the 2 of the top 3 tied at a cv mean of 1.0000 on every fold"
    winner, how = pick_winner(cv_candidates((perfect, 5000), (perfect, 1000)))  # a study from before losses were kept
    assert winner.trial.number == 1 and how.startswith("fewest parameters")
    noisy = [0.6, 0.8, 1.0, 0.8, 0.8]
    winner, _ = pick_winner(cv_candidates((noisy, 5000, 0.02), (noisy, 1000, 0.09)))
    assert winner.trial.number == 1  # with noise to measure, the one-standard-error rule stands


def test_without_cross_validation_the_best_mean_stands():
    winner, how = pick_winner(cv_candidates(([0.6, 0.8, 1.0], 5000), ([0.75, 0.8, 0.85], 10), scored_by="validation"))
    assert winner.trial.number == 0 and how == "best validation mean among the top 2"


def test_a_recall_task_retrains_the_whole_budget_not_the_epoch_recall_first_formed(task):
    study = hand_study([cv_row(1.0, 1.0, 3e-3)])  # best epoch 1 of 2
    done = final_model(study, replace(task, plateau_steps=400), top_k=1, seeds=1, device="cpu")
    assert done.winner.epochs == 1 and done.config.max_epochs == 2


@pytest.mark.parametrize("plateau_steps", [0, 400])
def test_a_schedule_the_time_limit_cut_short_is_retrained_for_the_budget_offered(task, plateau_steps):
    row = cv_row(1.0, 1.0, 3e-3)  # best epoch 1 of the 2 it trained
    row["result"] = {**row["result"], "train": {**row["result"]["train"], "max_epochs": 5}, "schedule_epochs": 2}
    done = final_model(hand_study([row]), replace(task, plateau_steps=plateau_steps), top_k=1, seeds=1, device="cpu")
    assert done.winner.epochs == 1 and done.config.max_epochs == 5  # the limit bounded the search, not the model


def test_the_export_is_the_seeds_ensemble_and_metrics_and_card_carry_the_test_mean_and_spread(tiny, task, tmp_path):
    result = export_trial(tiny.load(), tmp_path / "f", results_dir=tiny.results, top_k=1, seeds=2, device="cpu")
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    final = metrics["final"]
    assert len(final["test_per_seed"]) == 2 and metrics["members"] == 2
    assert metrics["test_std"] == pytest.approx(final["test_std"]) and metrics["val"] is None
    loaded = load_model(tmp_path / "f")
    assert isinstance(loaded, SeedEnsemble) and len(loaded.members) == 2
    with torch.no_grad():  # the members' mean class probabilities decide, and score what metrics.json says
        probabilities = torch.stack([m(task.test.x).softmax(-1) for m in loaded.members]).mean(0)
        torch.testing.assert_close(loaded(task.test.x).softmax(-1), probabilities)
    accuracy = (probabilities.argmax(-1) == task.test.y).double().mean().item()
    assert metrics["test"] == pytest.approx(accuracy) == pytest.approx(final["ensemble_test"])
    card = (tmp_path / "f" / "MODEL.md").read_text()
    assert f"one seed alone {final['test_mean']:.4f} ± {final['test_std']:.4f} (mean ± std over 2 seeds)" in card
    assert f"{metrics['test']:.4f} (this export: the ensemble of the 2 seeds)" in card
    assert "| parameters (each of the 2 members) |" in card
    assert "## How it was picked" in card and result.trial == final["winner"]
    assert final["picked_by"] == "best validation mean among the top 1" and f"(picked by {final['picked_by']})" in card


def test_one_seed_exports_the_first_seeds_network(tiny, tmp_path):
    export_trial(tiny.load(), tmp_path / "f", results_dir=tiny.results, top_k=1, seeds=2, device="cpu",
                 ensemble=False)
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert metrics["members"] == 1 and metrics["test"] == metrics["final"]["test_per_seed"][0]
    assert isinstance(load_model(tmp_path / "f"), CompositeModel)
    assert "The exported weights are the first seed's." in (tmp_path / "f" / "MODEL.md").read_text()


@pytest.mark.parametrize("flag", ["--final-seeds", "--top-k"])
def test_zero_seeds_or_candidates_is_one_line_and_writes_nothing(tiny, tmp_path, capsys, flag):
    code = None
    try:
        code = export_main(["--study", "tiny", "--results", str(tiny.results), "--out", str(tmp_path / "x"), flag, "0"])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and f"argument {flag}: '0' must be an integer >= 1" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_the_cli_retrains_by_default_and_says_so(tiny, tmp_path, capsys):
    args = ["--study", "tiny", "--results", str(tiny.results), "--out", str(tmp_path / "e"), "--device", "cpu",
            "--top-k", "1", "--final-seeds", "1"]
    assert export_main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("final model: rescoring the top 1 candidates") and "final run 2/2" in out
    assert "over 1 seed (the first seed exported)" in out


def test_the_cli_says_it_exports_the_ensemble_and_one_seed_exports_one(tiny, tmp_path, capsys):
    args = ["--study", "tiny", "--results", str(tiny.results), "--device", "cpu", "--top-k", "1", "--final-seeds", "2"]
    assert export_main([*args, "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert "retraining the winner on train + validation with 2 seeds and exporting their ensemble" in out
    assert f"test accuracy {metrics['test']:.4f} for the ensemble of 2 seeds exported (one seed alone" in out
    assert export_main([*args, "--out", str(tmp_path / "o"), "--one-seed"]) == 0
    out = capsys.readouterr().out
    assert "exporting the first seed" in out and "(the first seed exported)" in out
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["members"] == 1


def test_one_seed_with_the_search_weights_is_refused_in_one_line(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        export_main(["--study", "tiny", "--results", str(tiny.results), "--out", str(tmp_path / "x"),
                     "--search-weights", "--one-seed"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "argument --one-seed: not allowed with argument --search-weights" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()
