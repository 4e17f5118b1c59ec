from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.data.registry import references_for
from nas.data import TaskError, load_task
from nas.data.ucr import aeon_root, bundled_dir

from .helpers import assert_well_formed

# name: (official train size, official test size, channels, steps, classes)
OFFICIAL = {
    "ArrowHead": (36, 175, 1, 251, 3),
    "BasicMotions": (40, 40, 6, 100, 4),
    "GunPoint": (50, 150, 1, 150, 2),
    "ItalyPowerDemand": (67, 1029, 1, 24, 2),
    "JapaneseVowels": (270, 370, 12, 29, 9),
    "OSULeaf": (200, 242, 1, 427, 6),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_bundled_set_loads_offline_with_official_test_split(name):
    n_train, n_test, channels, steps, classes = OFFICIAL[name]
    task = load_task(f"ucr:{name}", seed=0)
    assert_well_formed(task)
    assert len(task.train) + len(task.val) == n_train and len(task.test) == n_test
    assert abs(len(task.val) - 0.2 * n_train) <= classes  # per-class rounding
    assert task.train.x.shape[1:] == (steps, channels)
    assert task.input_spec.num_outputs == classes == len(task.classes)
    assert set(task.train.y.tolist()) == set(range(classes))  # every class is kept in train


def test_japanese_vowels_is_padded_and_masked_not_truncated():
    from aeon.datasets import load_classification

    task = load_task("ucr:JapaneseVowels", seed=0)
    X_test, _ = load_classification("JapaneseVowels", split="test", extract_path=str(bundled_dir()), load_equal_length=False)
    true_lengths = torch.tensor([s.shape[1] for s in X_test])
    assert torch.equal(task.test.lengths, true_lengths)  # test keeps aeon's order
    assert task.test.x.shape == (370, 29, 12) and int(true_lengths.min()) < 29
    short = int(torch.argmin(task.test.lengths))
    length = int(task.test.lengths[short])
    assert task.test.mask[short, :length].all() and not task.test.mask[short, length:].any()
    assert int(task.test.mask[short].sum()) == length
    assert (task.test.x[short, length:] == 0).all() and (task.test.x[short, :length] != 0).any()


def test_japanese_vowels_standardised_over_real_train_steps_only():
    task = load_task("ucr:JapaneseVowels", seed=0)
    real = task.train.x[task.train.mask].double()  # (real steps, 12)
    assert torch.allclose(real.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(real.std(0, unbiased=False), torch.ones(12, dtype=torch.float64), atol=1e-4)


def test_basic_motions_keeps_class_names_in_file_order():
    assert load_task("ucr:BasicMotions").classes == ("standing", "running", "walking", "badminton")


def test_validation_split_is_stratified_and_seeded():
    a, b = load_task("ucr:OSULeaf", seed=0), load_task("ucr:OSULeaf", seed=1)
    assert torch.equal(torch.bincount(a.val.y), torch.bincount(b.val.y))
    assert not torch.equal(a.val.x, b.val.x)
    assert torch.equal(a.test.y, b.test.y)  # the official test split never moves


def test_reference_reads_the_result_files_aeon_ships():
    results = aeon_root() / "testing" / "example_results_files" / "classification" / "accuracy"
    expected = {
        method: pd.read_csv(results / f"{file}_accuracy.csv", index_col=0).loc["GunPoint"].mean()
        for method, file in (("InceptionTime", "InceptionTime"), ("HIVE-COTE 2", "HC2"))
    }
    reference = references_for("ucr:GunPoint")
    assert reference.keys() == expected.keys()
    for method, value in expected.items():
        assert reference[method] == pytest.approx(value, abs=1e-12) and 0.9 < value <= 1
    assert references_for("ucr:BasicMotions") == {}  # multivariate: not in those files


def test_unknown_ucr_name_lists_bundled_sets_without_downloading():
    with pytest.raises(TaskError, match=r"unknown UCR data set 'gunpoint'; did you mean 'GunPoint'\?.*JapaneseVowels"):
        load_task("ucr:gunpoint")
    with pytest.raises(TaskError, match="'Adiac'.*allowed: .*OSULeaf"):
        load_task("ucr:Adiac")  # in aeon's download list, but not bundled


def test_the_offline_fixture_stops_aeon_downloads(tmp_path: Path):
    """Without the bundled-name guard aeon would download; the fixture makes that attempt fail loudly."""
    from aeon.datasets import load_classification

    with pytest.raises(ValueError, match="tried the network"):
        load_classification("Adiac", split="train", extract_path=str(tmp_path))
