"""A seconds-long smoke run of the trainer benchmark: both loops are timed and the plot is drawn."""

from __future__ import annotations

import pandas as pd

from benchmarks import run_suite
from benchmarks.trainer import MODELS


def test_quick_trainer_suite_writes_csv_and_plot(tmp_path):
    table = run_suite("trainer", tmp_path, device="cpu", quick=True)
    written = pd.read_csv(tmp_path / "trainer.csv")
    assert list(written["model"]) == list(MODELS)
    assert (written[["trainer_s_per_epoch", "checkpointed_s_per_epoch", "bare_s_per_epoch"]] > 0).all().all()
    ratio = written["trainer_s_per_epoch"] / written["bare_s_per_epoch"]
    assert ((written["overhead_pct"] - 100 * (ratio - 1)).abs() < 1e-9).all()
    saved = written["checkpointed_s_per_epoch"] / written["bare_s_per_epoch"]
    assert ((written["checkpointed_overhead_pct"] - 100 * (saved - 1)).abs() < 1e-9).all()
    assert (tmp_path / "trainer.png").stat().st_size > 10_000
    assert len(table) == len(written)
