"""The quality suite's draws, summarised across seeds: which tables are merged, and what the summary says."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.quality import Budget, budget_for
from benchmarks.quality_draws import write_draws


def draw(seed: int, scores: dict[str, tuple[float, float, float]], quick: bool = False) -> pd.DataFrame:
    """One run's table as the suite writes it: per task the final model's, the Transformer's and MiniRocket's."""
    rows = [{"task": task, "seed": seed, "test_acc": ours, "baseline_test_acc": peer, "minirocket_test_acc": rocket,
             "beats_transformer": ours > peer, "within_3_of_minirocket": ours >= rocket - 0.03,
             "beats_minirocket": ours > rocket, "winner_summary": f"winner of seed {seed}"}
            for task, (ours, peer, rocket) in scores.items()]
    return pd.DataFrame(rows).assign(budget=budget_for(quick, None, None, seed=seed).describe(), machine="test")


@pytest.fixture
def budget() -> Budget:
    return budget_for(False, None, None, seed=0)


def test_draws_of_one_budget_are_summarised_per_task(tmp_path, budget):
    draw(0, {"ucr:GunPoint": (0.95, 0.92, 0.99), "ucr:OSULeaf": (0.95, 0.40, 0.96)}).to_csv(
        tmp_path / "quality.csv", index=False)
    draw(2, {"ucr:GunPoint": (0.98, 0.86, 0.99), "ucr:OSULeaf": (0.93, 0.40, 0.95)}).to_csv(
        tmp_path / "quality_seed2.csv", index=False)
    summary = write_draws(tmp_path, budget.describe()).set_index("task")
    gunpoint = summary.loc["ucr:GunPoint"]
    assert gunpoint["draws"] == 2 and gunpoint["seeds"] == "0 2"
    assert gunpoint["test_acc_mean"] == pytest.approx(0.965)
    assert gunpoint["test_acc_std"] == pytest.approx(pd.Series([0.95, 0.98]).std())  # over draws, not seeds
    assert gunpoint["baseline_test_acc_mean"] == pytest.approx(0.89)
    assert (gunpoint["beats_transformer"], gunpoint["within_3_of_minirocket"], gunpoint["beats_minirocket"]) == (2, 1, 0)
    assert summary.loc["ucr:OSULeaf", "within_3_of_minirocket"] == 2
    assert ", seed " not in summary.loc["ucr:OSULeaf", "budget"]  # the searches' seed is per draw
    written = pd.read_csv(tmp_path / "quality_draws.csv")
    assert list(written["task"]) == ["ucr:GunPoint", "ucr:OSULeaf"]
    assert (tmp_path / "quality_draws.png").stat().st_size > 10_000


def test_other_budgets_copies_and_single_draws_are_left_out(tmp_path, budget):
    draw(0, {"ucr:GunPoint": (0.96, 0.92, 0.99)}).to_csv(tmp_path / "quality.csv", index=False)
    assert write_draws(tmp_path, budget.describe()).empty  # one draw: the suite's own table says it all
    assert not (tmp_path / "quality_draws.csv").exists()
    draw(1, {"ucr:GunPoint": (0.50, 0.50, 0.50)}).to_csv(tmp_path / "quality_seed1_old.csv", index=False)
    draw(3, {"ucr:GunPoint": (0.50, 0.50, 0.50)}).to_csv(tmp_path / "quality_seed4.csv", index=False)
    draw(5, {"ucr:GunPoint": (0.50, 0.50, 0.50)}, quick=True).to_csv(tmp_path / "quality_seed5.csv", index=False)
    assert write_draws(tmp_path, budget.describe()).empty  # a renamed copy, a mislabelled seed, another budget
    draw(1, {"ucr:GunPoint": (0.98, 0.86, 0.99), "mqar": (1.0, math.nan, math.nan)}).to_csv(
        tmp_path / "quality_seed1.csv", index=False)
    summary = write_draws(tmp_path, budget.describe()).set_index("task")
    assert summary.loc["ucr:GunPoint", "seeds"] == "0 1"
    assert summary.loc["ucr:GunPoint", "machine"] == "test"  # one machine named once; several, each named
    mqar = summary.loc["mqar"]  # one draw, no peers: no spread and no verdict rather than a made-up one
    assert mqar["draws"] == 1 and math.isnan(mqar["test_acc_std"]) and math.isnan(mqar["minirocket_test_acc_mean"])
    assert pd.isna(mqar["beats_transformer"]) and pd.isna(mqar["within_3_of_minirocket"])  # its row says False


def test_tables_without_a_seed_column_are_no_draws(tmp_path, budget):
    """An older suite's table names no seed: it is skipped, and the run that writes beside it goes on."""
    draw(0, {"ucr:GunPoint": (0.96, 0.92, 0.99)}).drop(columns="seed").to_csv(tmp_path / "quality.csv", index=False)
    assert write_draws(tmp_path, budget.describe()).empty
