from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import IGNORE_INDEX, TaskError, list_tasks, load_task
from nas.data import mad
from nas.data import mad_probes as probes
from nas.data.mad import BASELINE, GENERATORS, LEVELS, PROBES, cache_path, generate_splits, probe_settings
from nas.data.prepare import split_rng

from .helpers import assert_same_tensors, assert_well_formed

TINY = {
    "in_context_recall": dict(vocab=8, seq_len=16),
    "fuzzy_recall": dict(vocab=10, seq_len=24, key_len=2, value_len=2),
    "noisy_recall": dict(vocab=12, seq_len=16, noise_vocab=4, frac_noise=0.3),
    "selective_copy": dict(vocab=6, seq_len=16, to_copy=4),
    "compression": dict(vocab=6, seq_len=8),
    "memorization": dict(vocab=16, seq_len=8),
}
FEW = dict(n_train=24, n_val=8, n_test=8)


def _settings(probe: str, **more) -> dict:
    return probe_settings(probe, **{**TINY[probe], **FEW, **more})


def _draw(probe: str, n: int, seed: int = 0, training: bool = False, **settings):
    kwargs = {k: v for k, v in settings.items() if not k.startswith("n_")}
    if probe == "memorization":
        kwargs.setdefault("table", probes.memorization_table(settings["vocab"], np.random.default_rng(seed)))
    return GENERATORS[probe](n, np.random.default_rng(seed), training=training, **kwargs)


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(x)}


@pytest.mark.parametrize("probe", PROBES)
def test_same_seed_gives_the_same_arrays_and_another_seed_others(probe):
    settings = _settings(probe)
    first, again, other = (generate_splits(probe, settings, seed) for seed in (3, 3, 4))
    assert set(first) == {f"{s}_{a}" for s in ("train", "val", "test") for a in "xy"}
    for key in first:
        assert first[key].dtype == np.int64 and np.array_equal(first[key], again[key]), key
    assert not np.array_equal(first["train_x"], other["train_x"])
    assert not np.array_equal(first["train_x"][:8], first["val_x"])  # each split from its own stream


@pytest.mark.parametrize("probe", PROBES)
def test_labels_are_in_range_and_only_where_the_answer_is_not_in_the_input(probe):
    settings = _settings(probe)
    vocab = settings["vocab"]
    x, y = _draw(probe, 300, **settings)
    assert x.shape == y.shape == (300, settings["seq_len"]) and x.dtype == y.dtype == np.int64
    assert 0 <= x.min() and x.max() < vocab
    labelled = y != IGNORE_INDEX
    assert labelled.any(axis=1).all() and (y[labelled] >= 0).all() and (y[labelled] < vocab).all()
    if probe.endswith("recall"):  # exactly the query markers carry labels: the value is never shown there
        assert np.array_equal(labelled, x == vocab - 1)
    elif probe == "selective_copy":  # the outputs after the copy token, at blanks
        assert labelled[:, -4:].all() and not labelled[:, :-4].any() and (x[labelled] == vocab - 2).all()
    elif probe == "memorization":  # every insert token, and values never appear in the input
        assert np.array_equal(labelled, x == vocab - 1) and not np.isin(x, y[labelled]).any()
    else:  # compression: the whole input, as MAD scores it
        assert labelled.all() and np.array_equal(x, y)


def test_in_context_recall_queries_a_key_seen_before_with_its_value():
    vocab = 5  # keys 0-1, values 2-3, query marker 4
    x, y = _draw("in_context_recall", 100, vocab=vocab, seq_len=10)
    for row_x, row_y in zip(x, y):
        pairs, labels = row_x.reshape(-1, 2), row_y.reshape(-1, 2)
        assert set(pairs[:, 0]) <= {0, 1} and (labels[:, 0] == IGNORE_INDEX).all()
        shown: dict[int, int] = {}
        for (key, value), (_, label) in zip(pairs.tolist(), labels.tolist()):
            if key in shown:
                assert value == 4 and label == shown[key]
            else:
                assert value in (2, 3) and label == IGNORE_INDEX
                shown[key] = value
        assert pairs[-1, 1] == 4  # the sequence always ends with a query


def test_noisy_recall_inserts_noise_pairs_at_the_given_share_and_never_queries_them():
    s = dict(vocab=32, seq_len=128, noise_vocab=16, frac_noise=0.4)  # keys 0-6, values 7-14, noise 15-30
    x, y = _draw("noisy_recall", 400, **s)
    pairs, labels = x.reshape(400, -1, 2), y.reshape(400, -1, 2)
    noise = (pairs >= 15) & (pairs <= 30)
    assert np.array_equal(noise[..., 0], noise[..., 1])  # noise fills whole pair slots
    assert (labels[noise[..., 0]] == IGNORE_INDEX).all()
    assert abs(noise[:, :-1, 0].mean() - 0.4) < 0.02 and not noise[:, -1, 0].any()
    assert (~noise[:, :-1, 0]).any(axis=1).all()  # at least one pair to recall


def _fuzzy_pairs(row_x: np.ndarray, row_y: np.ndarray, keys: int, pad: int):
    """(key, shown value, labels) runs of one fuzzy row; keys are ids < ``keys``, padding only in front."""
    start = int(np.argmax(row_x != pad))
    assert (row_x[:start] == pad).all() and (row_x[start:] != pad).all() and (row_y[:start] == IGNORE_INDEX).all()
    runs, key = [], []
    tokens, labels = row_x[start:].tolist(), row_y[start:].tolist()
    i = 0
    while i < len(tokens):
        while i < len(tokens) and tokens[i] < keys:
            key.append(tokens[i])
            assert labels[i] == IGNORE_INDEX
            i += 1
        j = i
        while j < len(tokens) and tokens[j] >= keys:
            j += 1
        runs.append((tuple(key), tuple(tokens[i:j]), tuple(labels[i:j])))
        key, i = [], j
    return runs


@pytest.mark.parametrize("training", [True, False])
def test_fuzzy_recall_queries_multi_token_keys_with_their_multi_token_values(training):
    vocab, key_len = 10, 3  # keys 0-3, values 4-7, padding 8, marker 9
    x, y = _draw("fuzzy_recall", 200, training=training, vocab=vocab, seq_len=32, key_len=key_len, value_len=2)
    lengths = set()
    for row_x, row_y in zip(x, y):
        shown: dict[tuple, tuple] = {}
        runs = _fuzzy_pairs(row_x, row_y, keys=4, pad=8)
        for key, value, labels in runs:
            assert 1 <= len(key) <= key_len and len(set(key)) == len(key) and 1 <= len(value) <= 2
            lengths.add(len(key))
            if key in shown:
                assert set(value) == {9} and labels == shown[key]
            else:
                assert 4 <= min(value) and max(value) <= 7 and set(labels) == {IGNORE_INDEX}
                shown[key] = value
        assert set(runs[-1][1]) == {9}  # ends with a query
    assert lengths == ({1, 2, 3} if training else {3})  # MAD prompts held-out sets at the longest key


def test_selective_copy_outputs_the_scattered_tokens_in_order():
    x, y = _draw("selective_copy", 100, vocab=6, seq_len=12, to_copy=3)  # tokens 0-3, blank 4, copy 5
    for row_x, row_y in zip(x, y):
        assert row_x[8] == 5 and (row_x[9:] == 4).all() and (row_y[:9] == IGNORE_INDEX).all()
        tokens = row_x[:8][row_x[:8] != 4]
        assert len(tokens) == 3 and (tokens < 4).all() and np.array_equal(row_y[9:], tokens)
        assert row_x[7] != 4  # as MAD: no blank between the last token and the copy token


def test_compression_target_is_the_input_reproduced():
    x, y = _draw("compression", 50, vocab=4, seq_len=5)
    assert (x[:, 4] == 3).all() and (x[:, :4] < 3).all() and np.array_equal(x, y)


@pytest.mark.parametrize("probe", PROBES)
def test_only_compression_asks_models_to_decode_from_the_last_token(probe, tmp_path):
    small = "n_train=8,n_val=4,n_test=4" + (",vocab=8,seq_len=8" if probe == "memorization" else "")
    task = load_task(f"mad:{probe}:{small}", cache_dir=tmp_path)
    assert task.input_spec.per_token and task.input_spec.bottleneck == (probe == "compression")


def test_memorization_labels_each_insert_token_with_the_fixed_dictionary_value():
    table = np.array([5, 3, 4])  # vocab 7: keys 0-2, values 3-5, insert token 6
    x, y = _draw("memorization", 50, vocab=7, seq_len=8, table=table)
    assert (x[:, 1::2] == 6).all() and (y[:, 0::2] == IGNORE_INDEX).all()
    assert np.array_equal(y[:, 1::2], table[x[:, 0::2]])
    made = probes.memorization_table(7, np.random.default_rng(0))
    assert sorted(made.tolist()) == [3, 4, 5]  # one-to-one onto the values


def test_levels_are_mads_sweep_and_each_gives_the_stated_shapes():
    assert list(PROBES) == list(LEVELS) and all(LEVELS[p][0] == BASELINE[p] for p in PROBES)
    assert {lv["frac_noise"] for lv in LEVELS["noisy_recall"]} == {0.2, 0.4, 0.6, 0.8}
    assert [lv["vocab"] for lv in LEVELS["memorization"]] == [256, 512, 1024, 2048, 4096, 8192]
    assert {lv["to_copy"] for lv in LEVELS["selective_copy"]} == {16, 32, 64, 96}
    assert {lv["n_train"] for lv in LEVELS["compression"]} == {12800, 6400, 3200, 1600, 800}
    for probe, levels in LEVELS.items():
        for level in levels:
            settings = probe_settings(probe, **level)
            x, y = _draw(probe, 2, **settings)
            assert x.shape == y.shape == (2, level["seq_len"]), (probe, level)
            assert 0 <= x.min() and x.max() < level["vocab"] and y.max() < level["vocab"], (probe, level)


def test_held_out_sequences_never_repeat_training_ones():
    settings = probe_settings("compression", vocab=3, seq_len=5, n_train=12, n_val=6, n_test=6)  # 16 sequences
    data = generate_splits("compression", settings, 0)
    naive, _ = GENERATORS["compression"](6, split_rng(0, 2), vocab=3, seq_len=5)  # the test stream's first draw
    assert _rows(naive) & _rows(data["train_x"])  # drawn naively, the test set would repeat training rows
    for split in ("val", "test"):
        assert not _rows(data[f"{split}_x"]) & _rows(data["train_x"])
    recall = generate_splits("in_context_recall", probe_settings("in_context_recall", vocab=5, seq_len=6,
                                                                 n_train=40, n_val=10, n_test=10), 0)
    assert not (_rows(recall["test_x"]) | _rows(recall["val_x"])) & _rows(recall["train_x"])


def test_memorization_shares_its_dictionary_across_splits_but_not_its_sequences():
    data = generate_splits("memorization", _settings("memorization"), 0)
    facts = {}
    for split in ("train", "val", "test"):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        for key, value in zip(x[:, 0::2].ravel().tolist(), y[:, 1::2].ravel().tolist()):
            assert facts.setdefault(key, value) == value
    assert not (_rows(data["val_x"]) | _rows(data["test_x"])) & _rows(data["train_x"])


def test_too_few_distinct_sequences_for_held_out_sets_are_refused(tmp_path):
    with pytest.raises(TaskError, match=r"mad:compression: val: \d+ of 10 sequences still repeat training"):
        load_task("mad:compression:vocab=3,seq_len=3,n_train=50,n_val=10,n_test=10", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_load_task_takes_overrides_in_the_name_and_caches_the_set(tmp_path, monkeypatch):
    name = "mad:in_context_recall:seq_len=16,vocab=8,n_train=16,n_val=8,n_test=8"
    task = load_task(name, seed=1, cache_dir=tmp_path)
    assert_well_formed(task)
    assert task.name == "mad:in_context_recall:n_test=8,n_train=16,n_val=8,seq_len=16,vocab=8"
    spec = task.input_spec
    assert spec.per_token and spec.vocab == spec.num_outputs == 8 and spec.seq_len == 16
    assert task.metric == "accuracy" and [len(s) for s in task.splits().values()] == [16, 8, 8]
    assert task.train.y.shape == (16, 16) and task.train.mask is None
    path = cache_path(tmp_path, "in_context_recall", probe_settings("in_context_recall", **TINY["in_context_recall"],
                                                                    n_train=16, n_val=8, n_test=8), 1)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert torch.load(path, weights_only=True)["train_x"].dtype == torch.int16
    assert load_task("mad:memorization:n_val=4,n_test=4", cache_dir=tmp_path).train.x.shape == (256, 32)
    monkeypatch.setattr(mad, "generate_splits", lambda *a: pytest.fail("cache was not used"))
    assert_same_tensors(load_task(task.name, seed=1, cache_dir=tmp_path), task)
    assert cache_path(tmp_path, "in_context_recall", probe_settings("in_context_recall"), 2) != path


def test_a_corrupt_cache_file_is_regenerated(tmp_path):
    name = "mad:selective_copy:seq_len=16,to_copy=4,n_train=8,n_val=4,n_test=4"
    first = load_task(name, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a torch file")
    assert_same_tensors(load_task(name, cache_dir=tmp_path), first)


def test_every_probe_is_listed_and_its_settings_are_the_baseline_plus_overrides():
    assert {f"mad:{p}" for p in PROBES} <= set(list_tasks())
    assert probe_settings("noisy_recall") == {**BASELINE["noisy_recall"], "n_val": 1280, "n_test": 1280}
    assert probe_settings("noisy_recall", frac_noise="0.4", seq_len=256)["frac_noise"] == 0.4


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mad:in_context_recal", r"unknown MAD probe 'in_context_recal'; did you mean 'in_context_recall'\? allowed: "
                                 r"in_context_recall, fuzzy_recall, noisy_recall, selective_copy, compression, memorization$"),
        ("mad:compression:noise=0.1", r"unknown parameter of task 'mad:compression' 'noise'.*allowed: vocab, seq_len, n_train, n_val, n_test$"),
        ("mad:compression:seq_len=abc", r"task 'mad:compression': seq_len='abc' must be an integer"),
        ("mad:compression:seq_len", r"parameter 'seq_len' must look like key=value, e.g. 'mad:compression:seq_len=128'"),
        ("mad:compression:n_test=0", r"mad:compression: n_train/n_val/n_test=\(12800, 1280, 0\) must all be >= 1"),
        ("mad:in_context_recall:seq_len=2", r"seq_len=2 must be even and >= 4 \(key-value pairs, the last a query\)"),
        ("mad:in_context_recall:seq_len=127", r"seq_len=127 must be even"),
        ("mad:in_context_recall:vocab=2", r"vocab=2 is too small for the query marker, a key and a value; use vocab >= 3"),
        ("mad:noisy_recall:frac_noise=1.0", r"frac_noise=1.0 must be in \[0, 1\)"),
        ("mad:noisy_recall:frac_noise=-0.1", r"frac_noise=-0.1 must be in \[0, 1\)"),
        ("mad:noisy_recall:noise_vocab=0", r"frac_noise=0.2 needs noise_vocab >= 1, got 0"),
        ("mad:noisy_recall:vocab=18", r"vocab=18 is too small for the query marker, 16 noise ids, .*use vocab >= 19"),
        ("mad:fuzzy_recall:vocab=7", r"vocab=7 is too small for padding, .* keys of 3 .*use vocab >= 8"),
        ("mad:fuzzy_recall:seq_len=12", r"seq_len=12 must be > 2 \* \(key_len \+ value_len\) = 12"),
        ("mad:selective_copy:seq_len=33", r"seq_len=33 must be > 2 \* to_copy \+ 1 = 33"),
        ("mad:selective_copy:to_copy=0", r"to_copy=0 must be >= 1"),
        ("mad:memorization:vocab=2", r"vocab=2 is too small for the insert token, a key and a value; use vocab >= 3"),
        ("mad", r"task 'mad' needs a probe: write 'mad:<probe>'"),
    ],
)
def test_bad_probes_and_settings_are_refused_in_one_line(name, message, tmp_path):
    with pytest.raises(TaskError, match=message) as err:
        load_task(name, cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_settings_go_in_the_name_not_in_keywords():
    with pytest.raises(TaskError, match=r"task 'mad' takes no parameters, got 'vocab'"):
        load_task("mad:compression", vocab=32)
