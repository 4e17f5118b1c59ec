"""Search-space files: every shipped file samples valid, buildable specs; bad files fail with a precise line."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import optuna
import pytest

from nas.models.attention import get_attention
from nas.models.model import build_model
from nas.search.space import SPACES_DIR, SearchSpace, SpaceError, load_space
from nas.data.spec import InputSpec
from nas.training.trainer import TrainConfig

SPACE_FILES = sorted(SPACES_DIR.rglob("*.yaml"))
SERIES = InputSpec(seq_len=8, features=8, num_outputs=10)
TOKENS = InputSpec(seq_len=12, vocab=20, num_outputs=20, per_token=True)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def random_trials(n: int, seed: int = 0):
    """Real Optuna trials (in memory): Optuna itself refuses a name whose distribution changes."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield trial
        study.tell(trial, 0.0)


def test_the_repository_ships_four_space_files():
    assert [p.relative_to(SPACES_DIR).as_posix() for p in SPACE_FILES] == ["default.yaml", "example.yaml", "timeseries.yaml", "tiny.yaml"]


@pytest.mark.parametrize("path", SPACE_FILES, ids=lambda p: p.stem)
def test_1000_samples_give_valid_specs_that_build(path):
    space = SearchSpace.from_file(path)
    draws = itertools.chain(((SERIES, t) for t in random_trials(800)), ((TOKENS, t) for t in random_trials(200)))
    for input_spec, trial in draws:  # a study per task, as the search keeps them
        spec, train = space.sample(trial, input_spec)
        assert isinstance(train, TrainConfig)
        model = build_model(spec, input_spec)
        assert sum(p.numel() for p in model.parameters()) > 0
        if input_spec.per_token:
            assert spec.patch == 1


def test_conditional_parameters_exist_only_where_they_mean_something():
    space = load_space("default")
    for trial in random_trials(300, seed=1):
        spec, _ = space.sample(trial, SERIES)
        names = set(trial.params)
        blocks = {n.split(".")[0] for n in names if re.match(r"b\d+\.", n)}
        distinct = next((v for n, v in trial.params.items() if n.startswith("pattern")), 1)
        assert blocks == {f"b{i}" for i in range(distinct)}  # a pattern of distinct blocks, repeated to the depth
        assert all(block.mixer == spec.blocks[i % distinct].mixer for i, block in enumerate(spec.blocks))
        for i, block in enumerate(spec.blocks[:distinct]):
            mixer = block.mixer
            own = {n for n in names if n.startswith(f"b{i}.")}
            assert {n.split(".")[1] for n in own} == {"topology", mixer.topology}
            assert any(".merge" in n for n in own) == (mixer.topology == "parallel" and len(set(space.choices["mixer.merge"].values)) > 1)
            windows = {n for n in own if n.endswith(".window")}
            assert len(windows) == sum(get_attention(b.type).windowed for b in mixer.branches)
            if mixer.topology == "fused":
                assert all(get_attention(b.type).scored for b in mixer.branches)
                assert not any(".a" in n for n in own)


def test_narrowed_choices_get_the_allowed_values_in_their_name():
    space = SearchSpace.from_dict({"model": {"d_model": [8, 12]}, "attention": {"heads": [1, 2, 4, 8], "type": "dot"}})
    seen = {}
    for trial in random_trials(60):
        spec, _ = space.sample(trial, SERIES)
        heads_name = next(n for n in trial.params if ".heads" in n)
        seen[spec.d_model] = heads_name
    assert seen == {8: "b0.single.heads", 12: "b0.single.heads[1,2,4]"}


def test_fixed_values_are_not_parameters():
    space = SearchSpace.from_dict({"model": {"depth": 1, "d_model": 32}, "attention": {"type": "cosine", "heads": 2}})
    trial = next(random_trials(1))
    spec, train = space.sample(trial, SERIES)
    assert trial.params == {}
    assert spec.summary() == "1x cosine/h2 | d=32 pos=sinusoidal pool=mean"
    assert (train.lr, train.batch_size) == (1e-3, 64)


def test_hash_ignores_comments_order_and_spelled_out_defaults(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("# mine\ntrain: {lr: 0.01}\nmodel: {d_model: [32, 64]}\n")
    b = tmp_path / "b.yaml"
    b.write_text("model:\n  d_model: [32, 64]\n  depth: 2\ntrain:\n  lr: 1e-2\n")
    assert SearchSpace.from_file(a).hash() == SearchSpace.from_file(b).hash()
    b.write_text("model:\n  d_model: [32, 64, 128]\ntrain:\n  lr: 1e-2\n")
    assert SearchSpace.from_file(a).hash() != SearchSpace.from_file(b).hash()


@pytest.mark.parametrize("batch, largest", [([128, 256], 256), (64, 64), ({"low": 16, "high": 48, "step": 16}, 48)])
def test_the_largest_batch_a_space_may_draw_is_what_the_budget_plans_for(batch, largest):
    assert SearchSpace.from_dict({"train": {"batch_size": batch}}).largest_batch() == largest


def test_a_space_is_found_by_name_or_path():
    assert load_space("tiny").name == "tiny"
    assert load_space(SPACES_DIR / "tiny.yaml").hash() == load_space("tiny").hash()
    with pytest.raises(SpaceError, match=r"'tinny'.*allowed: default, example, timeseries, tiny"):
        load_space("tinny")


BAD_FILES = {
    "unknown key": ("model:\n  d_modle: 64\n", r"unknown key\(s\) \['model.d_modle'\]; allowed in model: d_model"),
    "unknown section": ("modle: {}\n", r"unknown section\(s\) \['modle'\]; allowed: model, mixer"),
    "low above high": ("train:\n  lr: {low: 0.1, high: 0.01}\n", r"train.lr=.*`low <= high` must hold, but got low=0.1, high=0.01"),
    "log from zero": ("train:\n  weight_decay: {low: 0.0, high: 0.1, log: true}\n", r"train.weight_decay=.*log range needs low > 0"),
    "log with step": ("model:\n  d_model: {low: 16, high: 64, step: 16, log: true}\n", r"step and log cannot be combined"),
    "unknown range key": ("train:\n  lr: {low: 0.1, hi: 1}\n", r"unknown range key\(s\) \['hi'\]"),
    "out of domain": ("model:\n  dropout: 1.5\n", r"model.dropout=1.5: must be a number in \[0, 1\)"),
    "bad name": ("attention:\n  type: [dot, dto]\n", r"attention.type=\['dot', 'dto'\]: item 'dto' is not one of additive"),
    "empty list": ("model:\n  depth: []\n", r"model.depth=\[\]: an empty list"),
    "repeated value": ("model:\n  depth: [1, 1]\n", r"repeats a value"),
    "bool for int": ("model:\n  depth: true\n", r"model.depth=True: must be an integer >= 1"),
    "heads range": ("attention:\n  heads: {low: 1, high: 4}\n", r"attention.heads=.*takes a value or a list, not a range"),
    "heads not dividing": ("model:\n  d_model: [48, 50]\nattention:\n  heads: [4, 8]\n",
                           r"model.d_model=50 has no divisor among attention.heads=\[4, 8\]"),
    "kv not dividing": ("attention:\n  heads: [3]\n  kv_heads: [2]\nmodel:\n  d_model: 48\n",
                        r"attention.heads=3 has no divisor among attention.kv_heads=\[2\]"),
    "fused without scorer": ("mixer:\n  topology: [fused]\nattention:\n  type: linear\n", r"no score-based type to fuse"),
    "impossible position": ("model:\n  position: rotary\nattention:\n  type: [dot, linear]\n",
                            r"model.position=\['rotary'\]: no choice suits every attention type"),
    "not a mapping": ("- 1\n- 2\n", r"must be a mapping of sections"),
    "not yaml": ("model: [1, 2\n", r"not valid YAML"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_files_fail_with_file_key_value_and_rule(tmp_path, name):
    text, message = BAD_FILES[name]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert re.search(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(SpaceError, match="cannot read search space"):
        SearchSpace.from_file(tmp_path / "missing.yaml")


def test_a_long_series_is_patched_within_the_token_budget():
    space = SearchSpace.from_dict({"model": {"patch": [1, 2, 8, 16], "max_tokens": 128}})
    long = InputSpec(seq_len=1460, features=1, num_outputs=2)
    patches = {space.sample(trial, long)[0].patch for trial in random_trials(40)}
    assert patches == {16}  # 1460 / 16 = 92 tokens; 1, 2 and 8 leave 1460, 730 and 183
    none_fit = SearchSpace.from_dict({"model": {"patch": [1, 2], "max_tokens": 256}})
    assert {none_fit.sample(t, long)[0].patch for t in random_trials(5)} == {6}  # the shortest that fits
    assert {none_fit.sample(t, SERIES)[0].patch for t in random_trials(20)} == {1, 2}  # short series: all fit
    with pytest.raises(SpaceError, match=r"model.max_tokens=\[128, 256\] is a budget, not a choice"):
        SearchSpace.from_dict({"model": {"max_tokens": [128, 256]}})


def test_the_space_draws_convolutional_stems_with_odd_kernels():
    space = SearchSpace.from_dict({"model": {"embedding": ["linear", "conv"], "stem_layers": [1, 3],
                                             "stem_kernel": [3, 5]}})
    stems = [space.sample(trial, SERIES)[0].embedding for trial in random_trials(60)]
    convs = [s for s in stems if s.type == "conv"]
    assert convs and len(convs) < len(stems)
    assert {len(s.kernels) for s in convs} == {1, 3} and {k for s in convs for k in s.kernels} == {3, 5}
    assert all(space.sample(t, TOKENS)[0].embedding.type == "linear" for t in random_trials(10))  # tokens: no stem
    with pytest.raises(SpaceError, match=r"model.stem_kernel=4"):
        SearchSpace.from_dict({"model": {"embedding": ["conv"], "stem_kernel": [3, 4]}})


def test_a_stem_is_as_wide_as_the_model_unless_the_space_offers_other_widths():
    plain = SearchSpace.from_dict({"model": {"embedding": ["conv"], "d_model": [32]}})
    assert {plain.sample(t, SERIES)[0].embedding.channels for t in random_trials(5)} == {None}
    wide = SearchSpace.from_dict({"model": {"embedding": ["conv"], "d_model": [32], "stem_channels": [None, 128]}})
    specs = [wide.sample(t, SERIES)[0] for t in random_trials(30)]
    assert {s.embedding.channels for s in specs} == {None, 128}
    assert {build_model(s, SERIES).embedding.convs[-1].out_channels for s in specs} == {32, 128}
    with pytest.raises(SpaceError, match=r"model.stem_channels.*null \(= d_model\) or an integer >= 1"):
        SearchSpace.from_dict({"model": {"stem_channels": [0, 64]}})


def test_a_stem_is_layer_normed_unless_the_space_offers_batch_norm():
    plain = SearchSpace.from_dict({"model": {"embedding": ["conv"], "d_model": [32]}})
    assert {plain.sample(t, SERIES)[0].embedding.norm for t in random_trials(5)} == {"layer"}
    both = SearchSpace.from_dict({"model": {"embedding": ["linear", "conv"], "stem_norm": ["layer", "batch"]}})
    stems = [both.sample(t, SERIES)[0].embedding for t in random_trials(40)]
    assert {s.norm for s in stems if s.type == "conv"} == {"layer", "batch"}
    assert {s.norm for s in stems if s.type == "linear"} == {"layer"}, "no norm is drawn for a linear embedding"
    with pytest.raises(SpaceError, match=r"model.stem_norm.*'group'"):
        SearchSpace.from_dict({"model": {"stem_norm": ["group"]}})


def test_a_space_with_no_embedding_for_the_input_is_refused_not_quietly_given_linear():
    series_only = SearchSpace.from_dict({"model": {"embedding": ["conv"]}}, source="conv.yaml")
    series_only.check_input(SERIES)
    message = ("conv.yaml: model.embedding=['conv'] has none that reads token ids; "
               "list one of 'linear', 'shortconv'")
    with pytest.raises(SpaceError) as info:
        series_only.check_input(TOKENS)
    assert str(info.value) == message
    with pytest.raises(SpaceError, match=re.escape(message)):
        series_only.sample(next(random_trials(1)), TOKENS)
    with pytest.raises(SpaceError, match=r"model.embedding=\['shortconv'\] has none that reads continuous steps; "
                                         r"list one of 'conv', 'linear'"):
        SearchSpace.from_dict({"model": {"embedding": ["shortconv"]}}).check_input(SERIES)


def test_the_search_refuses_such_a_space_in_one_line_before_the_study_exists(tmp_path, capsys):
    from nas.cli import search_main
    space = tmp_path / "series.yaml"
    space.write_text("model: {embedding: [conv]}\n")
    code = search_main(["--task", "mqar:n_train=64,n_test=64", "--space", str(space), "--trials", "1",
                        "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has none that reads token ids" in err
    assert not list((tmp_path / "results").glob("*.db"))


def test_a_pattern_of_distinct_blocks_repeats_to_the_depth_and_a_large_one_frees_every_block():
    repeated = SearchSpace.from_dict({"model": {"depth": 4, "pattern": 2}, "mixer": {"topology": ["single", "serial"]},
                                      "attention": {"type": ["dot", "linear", "cosine"]}})
    free = SearchSpace.from_dict({"model": {"depth": 4, "pattern": 4}, "mixer": {"topology": ["single", "serial"]},
                                  "attention": {"type": ["dot", "linear", "cosine"]}})
    for trial in random_trials(30):
        blocks = repeated.sample(trial, SERIES)[0].blocks
        assert len(blocks) == 4 and blocks[0] == blocks[2] and blocks[1] == blocks[3]
    assert any(len({b.mixer for b in free.sample(t, SERIES)[0].blocks}) > 2 for t in random_trials(30))


def test_each_input_draws_only_the_embeddings_that_can_read_it():
    space = load_space("default")  # lists linear, conv and shortconv
    drawn = {kind: {space.sample(trial, kind)[0].embedding.type for trial in random_trials(60, seed=2)}
             for kind in (SERIES, TOKENS)}
    assert drawn[SERIES] == {"linear", "conv"} and drawn[TOKENS] == {"linear", "shortconv"}


def test_augmentation_is_drawn_for_whole_series_only_and_refuses_unknown_names():
    space = SearchSpace.from_dict({"train": {"augment": ["none", "scale_jitter_slice"]}})
    assert {space.sample(t, SERIES)[1].augment for t in random_trials(30)} == {"none", "scale_jitter_slice"}
    tokens = list(random_trials(10))
    assert {space.sample(t, TOKENS)[1].augment for t in tokens} == {"none"}
    assert not any("augment" in name for t in tokens for name in t.params), "token ids never draw it"
    regression = InputSpec(seq_len=8, features=2, num_outputs=1, target="regression")
    assert {space.sample(t, regression)[1].augment for t in random_trials(10)} == {"none"}
    assert {load_space("default").sample(t, SERIES)[1].augment for t in random_trials(5)} == {"none"}
    with pytest.raises(SpaceError, match=r"train.augment.*'flip'.*scale_jitter_slice"):
        SearchSpace.from_dict({"train": {"augment": ["none", "flip"]}})
