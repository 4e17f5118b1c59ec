from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from nas.data import load_task

from .helpers import assert_well_formed


def test_digits_is_eight_rows_of_eight_pixels_split_60_20_20():
    task = load_task("digits", seed=0)
    assert_well_formed(task)
    sizes = {name: len(split) for name, split in task.splits().items()}
    assert sum(sizes.values()) == 1797
    assert abs(sizes["train"] - 0.6 * 1797) <= 10 and abs(sizes["test"] - 0.2 * 1797) <= 10
    assert task.train.x.shape[1:] == (8, 8) and task.train.mask is None and task.train.lengths is None
    assert task.classes == tuple(str(d) for d in range(10)) and task.metric == "accuracy"
    assert task.input_spec.seq_len == 8 and task.input_spec.features == 8 and task.input_spec.num_outputs == 10


def test_digits_split_is_stratified():
    task = load_task("digits", seed=1)
    overall = np.bincount(load_digits().target, minlength=10) / 1797
    for split in task.splits().values():
        share = torch.bincount(split.y, minlength=10).numpy() / len(split)
        assert np.abs(share - overall).max() < 0.01


def test_digits_pixels_are_standardised_with_train_statistics():
    task = load_task("digits", seed=0)
    pixels = task.train.x.reshape(-1, 8).double()  # (samples * rows, pixel columns)
    varying = pixels.std(0) > 0
    assert torch.allclose(pixels.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(pixels.std(0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=torch.float64), atol=1e-4)
    # The test split is transformed, not re-fitted: its means stay off zero somewhere.
    assert task.test.x.reshape(-1, 8).double().mean(0).abs().max() > 1e-3
