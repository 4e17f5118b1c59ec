"""The capability profile: which mixers, how their sizes are matched, MAD's scoring, and a real tiny profile."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from nas.data.mad import BASELINE, LEVELS, PROBES
from nas.models.attention import attention_names
from nas.models.spec import ArchSpec, AttentionSpec as A, BlockSpec, MixerSpec
from nas.results.profile import (CPU, FULL, PAIR, arch, block_params, capability_panel, levels, load_profile,
                                 matched_width, mixers, plan, profile, profile_path, profile_table)

TINY = replace(CPU, name="tiny", width=8, heads=2, steps=3, n_train=40, n_eval=24, lrs=(1e-3, 3e-3))  # a grid of 2


def test_every_attention_type_alone_then_each_topology_over_the_fixed_pair():
    specs = mixers(window=32)
    singles = [name for name, m in specs.items() if m.topology == "single"]
    assert singles == list(attention_names())
    composites = {m.topology: tuple(b.type for b in m.branches) for m in specs.values() if m.topology != "single"}
    assert composites == {"parallel": PAIR, "serial": PAIR, "fused": PAIR}
    assert specs["local"].branches[0].window == 32


@pytest.mark.parametrize("size", [CPU, FULL], ids=lambda s: s.name)
def test_every_mixer_is_matched_to_the_dot_models_block_parameters(size):
    reference = block_params(arch(mixers(size.window)["dot"], size.width, size))
    for name, mixer in mixers(size.window).items():
        width, params = matched_width(mixer, size)
        assert width % size.heads == 0, name
        assert abs(params - reference) / reference < 0.05, (name, width, params, reference)
        assert params == block_params(arch(mixer, width, size))
    assert matched_width(mixers(size.window)["dot"], size)[0] == size.width


def test_cpu_size_runs_each_probes_baseline_with_capped_data_and_full_size_every_level_as_mad():
    for probe in PROBES:
        (cpu,) = levels(probe, CPU)
        assert {k: v for k, v in cpu.items() if not k.startswith("n_")} == \
               {k: v for k, v in BASELINE[probe].items() if not k.startswith("n_")}
        assert cpu["n_train"] == min(BASELINE[probe]["n_train"], CPU.n_train) and cpu["n_test"] == CPU.n_eval
        full = levels(probe, FULL)
        assert [{k: v for k, v in lv.items() if k not in ("n_val", "n_test")} for lv in full] == LEVELS[probe]
    assert (FULL.width, FULL.batch, FULL.epochs, FULL.lrs, FULL.weight_decays) == (128, 128, 200, (1e-4, 5e-4, 1e-3),
                                                                                    (0.0, 0.1))
    assert CPU.epochs_for(4000) == 6 and CPU.epochs_for(256) == 100  # about 400 steps of 64 either way
    assert arch(mixers(CPU.window)["dot"], 32, CPU).embedding.type == "shortconv"
    assert arch(mixers(FULL.window)["dot"], 128, FULL).embedding.type == "linear"  # MAD's token table alone
    with pytest.raises(ValueError, match="exactly one of epochs"):
        replace(CPU, epochs=3)


def test_the_table_takes_each_levels_best_over_the_grid_then_the_mean_over_levels():
    runs = pd.DataFrame([
        # mixer, probe, level, lr, test
        ("dot", "compression", 0, 1e-3, 0.2), ("dot", "compression", 0, 3e-3, 0.6),
        ("dot", "compression", 1, 1e-3, 0.4), ("dot", "compression", 1, 3e-3, 0.1),
        ("dot", "memorization", 0, 1e-3, 0.9), ("dot", "memorization", 0, 3e-3, 0.7),
        ("linear", "compression", 0, 1e-3, 0.3), ("linear", "memorization", 0, 1e-3, 0.5),
    ], columns=["mixer", "probe", "level", "lr", "test"])
    table = profile_table(runs)
    assert list(table.index) == ["dot", "linear"] and list(table.columns) == ["compression", "memorization", "mean"]
    assert table.loc["dot", "compression"] == pytest.approx((0.6 + 0.4) / 2)
    assert table.loc["dot", "memorization"] == pytest.approx(0.9)
    assert table.loc["dot", "mean"] == pytest.approx((0.5 + 0.9) / 2)
    assert table.loc["linear", "mean"] == pytest.approx(0.4)


def test_unknown_probes_and_mixers_are_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown probe\(s\) \['recall'\]; allowed: in_context_recall, fuzzy_recall"):
        plan(TINY, ["recall"])
    with pytest.raises(ValueError, match=r"unknown mixer\(s\) \['softmax'\]; allowed: additive"):
        plan(TINY, PROBES, ["softmax"])


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return profile(TINY, probes=["compression", "memorization"], names=["dot", "linear", "fused[dot+local]"],
                   device="cpu", cache_dir=cache, progress=None), cache


def test_a_tiny_profile_trains_every_run_once_and_records_it(tiny_runs):
    runs, _ = tiny_runs
    assert len(runs) == 2 * 3 * 2  # probes x mixers x learning rates
    assert set(runs["mixer"]) == {"dot", "linear", "fused[dot+local]"}
    assert runs["test"].between(0, 1).all() and runs["val"].between(0, 1).all()
    assert set(runs["task"]) == {"mad:compression:n_test=24,n_train=40,n_val=24",
                                 "mad:memorization:n_test=24,n_train=40,n_val=24"}
    assert (runs["epochs"] == [TINY.epochs_for(40)] * len(runs)).all()
    assert (runs["size_name"] == "tiny").all() and (runs["size_lrs"] == "(0.001, 0.003)").all()


def test_two_processes_give_the_same_scores_as_one(tiny_runs):
    runs, cache = tiny_runs
    again = profile(TINY, probes=["compression", "memorization"], names=["dot", "linear", "fused[dot+local]"],
                    device="cpu", cache_dir=cache, progress=None, jobs=2)
    columns = ["mixer", "task", "lr", "width", "params", "val", "test"]
    pd.testing.assert_frame_equal(again[columns], runs[columns])


def test_a_saved_profile_is_found_by_device_class_only(tiny_runs, tmp_path):
    runs, _ = tiny_runs
    assert load_profile(tmp_path, "cpu") is None
    runs.to_csv(profile_path(tmp_path, "cpu"), index=False)
    assert profile_path(tmp_path, "cuda:1").name == "profile_cuda.csv"
    pd.testing.assert_frame_equal(load_profile(tmp_path, "cpu"), profile_table(runs), check_exact=False)


def test_the_panel_shows_the_winners_types_its_measured_composite_and_the_stock_transformer():
    scores = pd.DataFrame({"compression": [0.1, 0.2, 0.3, 0.4, 0.5]},
                          index=["dot", "linear", "local", "cosine", "parallel[dot+local]"])
    winner = ArchSpec(d_model=16, blocks=(
        BlockSpec(MixerSpec("parallel", (A("dot", 2), A("local", 2, window=4)), "gate")),
        BlockSpec(MixerSpec("single", (A("linear", 2),))),
    ))
    panel = capability_panel(scores, winner)
    assert list(panel.index) == ["dot", "local", "parallel[dot+local]", "linear"]
    assert list(panel["role"]) == ["winner's part and stock Transformer", "winner's part", "winner's part",
                                   "winner's part"]
    other = ArchSpec(d_model=16, blocks=(BlockSpec(MixerSpec("single", (A("cosine", 2),))),))
    assert list(capability_panel(scores, other)["role"]) == ["winner's part", "stock Transformer"]
