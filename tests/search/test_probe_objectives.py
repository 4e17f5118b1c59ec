"""Probe objectives: a search trades its task's accuracy against a MAD probe skill of each candidate's blocks."""

from __future__ import annotations

import io

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nas.cli import search_main
from nas.data.mad import PROBES
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, EmbeddingSpec, MixerSpec
from nas.search import probe_objectives
from nas.search.config import SearchConfig
from nas.search.probe_objectives import ProbeScorer
from nas.search.run import run_search
from nas.training.probes import CPU, ProfileSize, probe_arch

TINY = ProfileSize("tiny", width=16, heads=2, blocks=2, batch=32, epochs=2, steps=None, seconds=None, n_train=64,
                   n_eval=32, lrs=(3e-3,), weight_decays=(0.0,), all_levels=False, window=4, stem=(3,))
SPEC = ArchSpec(d_model=16, blocks=(BlockSpec(MixerSpec("single", (AttentionSpec("dot", 2),))),) * 2,
                position="learned", patch=2, embedding=EmbeddingSpec("conv", (5,)))


@pytest.fixture
def tiny_probes(monkeypatch):
    monkeypatch.setattr(probe_objectives, "PROBE_SIZE", TINY)


def test_a_probe_trains_the_candidates_blocks_behind_the_sizes_token_stem():
    arch = probe_arch(SPEC, CPU)
    assert arch.blocks == SPEC.blocks and arch.d_model == 16 and arch.position == "learned"
    assert arch.patch == 1 and arch.embedding == EmbeddingSpec("shortconv", CPU.stem)


def test_probe_scores_are_seeded_and_the_objective_is_validation_not_test(tiny_probes, tmp_path):
    scorer = ProbeScorer(["in_context_recall"], device="cpu", seed=0, cache_dir=tmp_path)
    first, again = scorer(SPEC), scorer(SPEC)  # the second reuses the probe's data on the device
    fresh = ProbeScorer(["in_context_recall"], device="cpu", seed=0, cache_dir=tmp_path)(SPEC)
    score = first["in_context_recall"]
    for other in (again, fresh):
        assert score == {**other["in_context_recall"], "seconds": score["seconds"]}
    assert score["task"] == "mad:in_context_recall:n_test=32,n_train=64,n_val=32" and score["epochs"] == 2
    assert 0 <= score["val"] <= 1 and 0 <= score["test"] <= 1


def test_a_search_with_a_probe_objective_maximises_it_and_records_each_score(tiny_probes, tmp_path):
    out = io.StringIO()
    outcome = run_search(SearchConfig(space="tiny", trials=3, max_epochs=2, results_dir=str(tmp_path),
                                      pruner="none", objectives=("accuracy", "probe:in_context_recall")), out=out)
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MAXIMIZE]
    assert study.metric_names == ["accuracy", "probe:in_context_recall"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        probe = trial.user_attrs["probes"]["in_context_recall"]
        assert trial.values == [trial.user_attrs["best_val"], probe["val"]]
        assert probe["task"].startswith("mad:in_context_recall:")
        assert f"in_context_recall={probe['val']:.4f}" in out.getvalue()  # shown as each trial ends
    assert "Pareto front over accuracy, probe:in_context_recall" in out.getvalue()


def test_an_unknown_probe_objective_names_the_six(tmp_path, capsys):
    with pytest.raises(ValueError, match="objective 'probe:recall' names an unknown probe; allowed: "
                                         + ", ".join(f"probe:{p}" for p in PROBES)):
        SearchConfig(objectives=("accuracy", "probe:recall"))
    code = search_main(["--space", "tiny", "--trials", "1", "--objectives", "accuracy,probe:recall",
                        "--results", str(tmp_path)])
    assert code == 2 and "unknown probe" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.db"))
