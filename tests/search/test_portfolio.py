"""The portfolio: known-good candidates a new study runs first, recorded as such, refused when not valid."""

from __future__ import annotations

import io

import optuna
import pytest

from nas.models.spec import ArchSpec
from nas.search import study as study_module
from nas.search.config import SearchConfig
from nas.search.curve_pruning import shadow_name
from nas.search.record import result_of
from nas.search.portfolio import PORTFOLIO_ATTR
from nas.search.run import run_search
from nas.search.space import SPACES_DIR, SearchSpace, SpaceError, load_space
from nas.data.spec import InputSpec

PORTFOLIO = """
portfolio:
  dot-16: {model: {d_model: 16}, mixer: {topology: single}, attention: {type: dot, heads: 2}}
  linear-8: {model: {d_model: 8}, mixer: {topology: single}, attention: {type: linear, heads: 1}}
"""


def tiny_with(tmp_path, text: str = PORTFOLIO) -> str:
    path = tmp_path / "tiny-portfolio.yaml"
    path.write_text((SPACES_DIR / "tiny.yaml").read_text() + text)
    return str(path)


def search(tmp_path, trials: int, **changes):
    settings = {"max_epochs": 1, **changes}
    config = SearchConfig(space=tiny_with(tmp_path), trials=trials, study="p", results_dir=str(tmp_path), quiet=True,
                          **settings)
    outcome = run_search(config, out=io.StringIO())
    return outcome, optuna.load_study(study_name="p", storage=outcome.storage).trials


def test_a_new_study_runs_the_portfolio_first_and_records_it(tmp_path):
    outcome, trials = search(tmp_path, trials=4)
    assert outcome.status == "done"
    assert [t.user_attrs.get(PORTFOLIO_ATTR) for t in trials] == ["dot-16", "linear-8", None, None]
    first, second = (ArchSpec.from_json(t.user_attrs["arch"]) for t in trials[:2])
    assert (first.d_model, first.blocks[0].mixer.branches[0].type, first.blocks[0].mixer.branches[0].heads) == (
        16, "dot", 2)
    assert (second.d_model, second.blocks[0].mixer.branches[0].type) == (8, "linear")

    _, again = search(tmp_path, trials=6)  # resuming never runs it twice
    assert sum(PORTFOLIO_ATTR in t.user_attrs for t in again) == 2


def test_the_portfolio_can_be_turned_off(tmp_path):
    _, trials = search(tmp_path, trials=2, portfolio=False)
    assert not any(PORTFOLIO_ATTR in t.user_attrs for t in trials)


def test_a_short_search_runs_only_as_much_of_the_portfolio_as_it_has_trials(tmp_path):
    _, trials = search(tmp_path, trials=1)
    assert [t.user_attrs.get(PORTFOLIO_ATTR) for t in trials] == ["dot-16"]
    assert not [t for t in trials if t.state == optuna.trial.TrialState.WAITING]


@pytest.mark.parametrize("objectives", [("accuracy",), ("accuracy", "params")])
def test_the_pruner_sees_a_portfolio_entrys_curve_but_never_cuts_it_short(tmp_path, monkeypatch, objectives):
    """Hyperband judges some trials after one epoch by the hash of their number; an entry must train to the end."""
    monkeypatch.setattr(study_module, "make_pruner", lambda name, budget: optuna.pruners.ThresholdPruner(lower=2.0))
    outcome, trials = search(tmp_path, trials=4, max_epochs=2, objectives=objectives)  # every curve is below 2
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    assert [result_of(t)["epochs"] for t in trials] == [2, 2, 1, 1]
    judged = trials if len(objectives) == 1 else optuna.load_study(
        study_name=shadow_name("p"), storage=outcome.storage).trials
    assert [len(t.intermediate_values) for t in judged] == [2, 2, 1, 1]


def test_the_shipped_portfolios_build_the_stock_transformer_and_one_model_per_type():
    series = InputSpec(seq_len=96, features=1, num_outputs=2)
    for name in ("default", "timeseries"):
        space = load_space(name)
        entries = dict(space.portfolio_params(series))
        types = set()
        for params in entries.values():
            spec, _ = space.sample(optuna.trial.FixedTrial(params), series)
            types |= {m.type for b in spec.blocks for m in b.mixer.branches}
        assert {"transformer-32x2", "conv-transformer-64x2"} <= set(entries)
        assert types == {"dot", "general", "additive", "cosine", "local", "linear"}


def test_each_input_gets_the_portfolio_entries_whose_embedding_reads_it():
    """A convolutional stem cannot read token ids, and a token table no series: such entries are left out."""
    space = load_space("default")
    series = dict(space.portfolio_params(InputSpec(seq_len=96, features=1, num_outputs=2)))
    tokens = dict(space.portfolio_params(InputSpec(seq_len=64, vocab=64, num_outputs=64, per_token=True)))
    assert "conv-transformer-64x2" in series and "shortconv-transformer-64x2" not in series
    assert "shortconv-transformer-64x2" in tokens and "conv-transformer-64x2" not in tokens
    stems = {name for name, params in series.items() if params.get("embedding") == "conv"}
    assert stems == {"conv-transformer-64x2", "conv3-transformer-64x2"}
    assert set(tokens) - {"shortconv-transformer-64x2"} == set(series) - stems
    assert tokens["shortconv-transformer-64x2"]["embedding"] == "shortconv"


@pytest.mark.parametrize("entry,message", [
    ("bad: {model: {d_modle: 8}}", r"portfolio entry 'bad': unknown key 'model.d_modle'; allowed in model: d_model"),
    ("bad: {model: {d_model: 32}}", r"portfolio entry 'bad' is not a valid architecture: model.d_model=32 is not "
                                    r"offered here; allowed: 8, 16"),
    ("bad: {attention: {type: nosuch}}", r"portfolio entry 'bad': attention.type='nosuch': one of additive"),
    ("bad: {training: {}}", r"portfolio entry 'bad': unknown section 'training'"),
])
def test_an_invalid_portfolio_entry_is_refused_in_one_line(tmp_path, entry, message):
    with pytest.raises(SpaceError, match=message) as refused:
        SearchSpace.from_file(tiny_with(tmp_path, "portfolio:\n  " + entry + "\n"))
    assert "\n" not in str(refused.value)
