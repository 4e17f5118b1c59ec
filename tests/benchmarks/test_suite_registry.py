"""The suite registry's options and the baselines it loads from ``scripts/baselines/``."""

from __future__ import annotations

import pytest
import torch

from benchmarks import load_baseline, run_suite
from nas.cli import benchmark_main
from nas.data.spec import InputSpec


def test_an_option_a_suite_does_not_take_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"suite 'trainer' has no option --trials; it takes: no options"):
        run_suite("trainer", tmp_path, trials=5)
    assert not any(tmp_path.iterdir())


def test_the_cli_says_which_option_is_wrong_and_exits_non_zero(tmp_path, capsys):
    assert benchmark_main(["attention", "--out", str(tmp_path), "--seeds", "3"]) == 2
    assert "no option --seeds" in capsys.readouterr().err
    assert benchmark_main(["speed", "--out", str(tmp_path), "--seed", "1"]) == 2  # only quality takes one seed
    assert "suite 'speed' has no option --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a seed numpy and Optuna would reject, refused before any run
        benchmark_main(["quality", "--out", str(tmp_path / "never"), "--seed", "-1"])
    assert refused.value.code == 2 and not (tmp_path / "never").exists()
    assert "--seed: '-1' must be an integer >= 0" in capsys.readouterr().err


def test_the_transformer_baseline_classifies_series_and_tokens_and_ignores_padding():
    transformer = load_baseline("transformer")
    series = transformer.from_input_spec(InputSpec(seq_len=10, num_outputs=3, features=2), d_model=16, heads=2,
                                         layers=1, patch=4).eval()
    x, mask = torch.randn(2, 10, 2), torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    out = series(x, mask)
    assert out.shape == (2, 3)
    changed = x.clone()
    changed[1, 6:] = 99.0  # padding only, in a patch with real steps (4-7) and in one without (8-9)
    assert torch.allclose(series(changed, mask), out, atol=1e-5)
    tokens = transformer.from_input_spec(InputSpec(seq_len=6, num_outputs=4, vocab=9), d_model=8, heads=2, layers=1)
    assert tokens(torch.randint(0, 9, (3, 6)), None).shape == (3, 4)


def test_an_unknown_baseline_names_where_it_looked():
    with pytest.raises(ValueError, match=r"baseline 'nope' not found at .*scripts/baselines/nope.py"):
        load_baseline("nope")
