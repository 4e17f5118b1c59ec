"""A seconds-long smoke run of the attention benchmark: it measures every family and draws the plot."""

from __future__ import annotations

import pandas as pd

from nas.models.attention import attention_names
from benchmarks import run_suite


def test_quick_attention_suite_writes_csv_and_plot(tmp_path):
    table = run_suite("attention", tmp_path, device="cpu", quick=True)
    written = pd.read_csv(tmp_path / "attention.csv")
    assert set(written["type"]) == set(attention_names())
    assert (written["ms_fwd_bwd"] > 0).all()
    assert written["peak_mib"].notna().sum() == len(attention_names())  # one memory figure per family
    assert (tmp_path / "attention.png").stat().st_size > 10_000
    assert len(table) == len(written)
