from __future__ import annotations

import numpy as np

from nas.data.prepare import pad_series, split_rng, stratified_split


def test_stratified_split_partitions_and_holds_out_each_class_in_proportion():
    labels = np.repeat(np.arange(3), [50, 20, 2])
    kept, held = stratified_split(labels, 0.2, split_rng(0, 1))
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(72))
    assert np.bincount(labels[held], minlength=3).tolist() == [10, 4, 0]  # 0.2 * 2 rounds to 0
    assert set(labels[kept]) == {0, 1, 2}


def test_stratified_split_keeps_one_sample_of_a_class_in_train():
    kept, held = stratified_split(np.array([0, 0, 1, 1]), 0.9, split_rng(0, 1))
    assert sorted(np.array([0, 0, 1, 1])[kept].tolist()) == [0, 1] and len(held) == 2


def test_split_rng_streams_are_reproducible_and_independent():
    assert split_rng(3, 0).integers(1 << 30) == split_rng(3, 0).integers(1 << 30)
    assert split_rng(3, 0).integers(1 << 30) != split_rng(3, 1).integers(1 << 30)


def test_pad_series_keeps_true_lengths_and_zero_pads():
    x, lengths = pad_series([np.ones((3, 2)), np.full((1, 2), 5.0)])
    assert x.shape == (2, 3, 2) and lengths.tolist() == [3, 1]
    assert (x[1, 0] == 5).all() and (x[1, 1:] == 0).all()
