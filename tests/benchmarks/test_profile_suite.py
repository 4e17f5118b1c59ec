"""A seconds-long smoke run of the profile suite: every mixer on two probes, its CSV, heat map and table."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import run_suite
from nas.cli import benchmark_main
from nas.results.profile import mixers


def test_quick_profile_writes_the_runs_the_heat_map_and_returns_the_table(tmp_path):
    table = run_suite("profile", tmp_path, device="cpu", quick=True, tasks=("compression", "memorization"))
    runs = pd.read_csv(tmp_path / "profile_cpu.csv")
    assert set(runs["mixer"]) == set(mixers(window=1)) and set(runs["probe"]) == {"compression", "memorization"}
    assert (runs["size_name"] == "quick").all() and runs["machine"].notna().all()
    assert (tmp_path / "profile_cpu.png").stat().st_size > 10_000
    assert list(table.columns) == ["mixer", "compression", "memorization", "mean"] and len(table) == len(mixers(1))


def test_quick_and_full_together_are_refused_in_one_line(tmp_path, capsys):
    assert benchmark_main(["profile", "--quick", "--full", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quick and --full contradict each other" in err


def test_an_unknown_probe_is_refused_with_the_six(tmp_path, capsys):
    assert benchmark_main(["profile", "--quick", "--tasks", "recall", "--out", str(tmp_path)]) == 2
    assert "unknown probe(s) ['recall']; allowed: in_context_recall" in capsys.readouterr().err
    assert not (tmp_path / "profile_cpu.csv").exists()


def test_full_is_an_option_of_the_profile_suite_only(tmp_path):
    with pytest.raises(ValueError, match="suite 'attention' has no option --full"):
        run_suite("attention", tmp_path, quick=True, full=True)
