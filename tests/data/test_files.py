from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import TaskError, load_task

from .helpers import assert_well_formed


def _arrays(seed: int = 0, n: int = 30, steps: int = 5, features: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["cat", "dog", "eel"])
    return {
        "X_train": rng.normal(size=(n, steps, features)), "y_train": labels[np.arange(n) % 3],
        "X_val": rng.normal(size=(6, steps, features)), "y_val": labels[np.arange(6) % 3],
        "X_test": rng.normal(size=(9, steps, features)), "y_test": labels[np.arange(9) % 3],
    }


def _npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return f"file:{path}"


def test_npz_round_trips_exactly_without_normalisation(tmp_path):
    arrays = _arrays()
    task = load_task(_npz(tmp_path, **arrays), normalize=False)
    assert_well_formed(task)
    assert task.name == f"file:{tmp_path / 'data.npz'}" and task.classes == ("cat", "dog", "eel")
    for split in ("train", "val", "test"):
        got = task.splits()[split]
        assert torch.equal(got.x, torch.from_numpy(arrays[f"X_{split}"].astype(np.float32)))
        assert got.y.tolist() == [["cat", "dog", "eel"].index(v) for v in arrays[f"y_{split}"]]
        assert got.mask is None and got.lengths is None


def test_npz_standardises_with_train_statistics_only(tmp_path):
    arrays = _arrays()
    arrays["X_test"] = arrays["X_test"] * 10 + 50  # a shifted test set must not move the statistics
    name = _npz(tmp_path, **arrays)
    raw, task = load_task(name, normalize=False), load_task(name)
    train = arrays["X_train"].reshape(-1, 3)
    mean, std = train.mean(0), train.std(0)
    for split in ("train", "val", "test"):
        expected = (arrays[f"X_{split}"] - mean) / std
        assert torch.allclose(task.splits()[split].x, torch.from_numpy(expected).float(), atol=1e-5)
    assert torch.equal(raw.test.y, task.test.y)
    np.testing.assert_allclose(task.scaling.mean, mean, rtol=1e-6)  # kept, so an export can scale new data alike
    np.testing.assert_allclose(task.scaling.std, std, rtol=1e-6)
    assert raw.scaling is None


def test_npz_without_val_splits_train_stratified_and_seeded(tmp_path):
    arrays = {k: v for k, v in _arrays(n=60).items() if not k.endswith("_val")}
    name = _npz(tmp_path, **arrays)
    task = load_task(name, normalize=False, seed=0)
    assert len(task.train) + len(task.val) == 60 and torch.bincount(task.val.y).tolist() == [4, 4, 4]
    rows = {tuple(r) for r in task.train.x.reshape(len(task.train), -1).tolist()}
    assert rows.isdisjoint(tuple(r) for r in task.val.x.reshape(len(task.val), -1).tolist())
    assert not torch.equal(load_task(name, normalize=False, seed=1).val.x, task.val.x)


def test_npz_two_dimensional_x_is_one_feature_and_float_labels_are_regression(tmp_path):
    rng = np.random.default_rng(0)
    task = load_task(_npz(
        tmp_path, X_train=rng.normal(size=(20, 7)), y_train=rng.normal(size=(20, 2)),
        X_test=rng.normal(size=(5, 7)), y_test=rng.normal(size=(5, 2)),
    ))
    assert task.train.x.shape[1:] == (7, 1) and task.metric == "mse" and task.classes is None
    assert task.input_spec.target == "regression" and task.input_spec.num_outputs == 2
    assert task.train.y.dtype == torch.float32 and task.train.y.shape[1] == 2


def test_integer_labels_keep_numeric_class_order(tmp_path):
    arrays = _arrays()
    for split in ("train", "val", "test"):
        arrays[f"y_{split}"] = np.where(arrays[f"y_{split}"] == "cat", 10, 2)
    task = load_task(_npz(tmp_path, **arrays))
    assert task.classes == ("2", "10")


CSV = """split,sample,step,temp,pressure,label
train,a,0,21.5,1.01,calm
train,a,1,21.9,1.00,calm
train,b,1,18.0,0.96,storm
train,b,0,18.2,0.97,storm
train,b,2,17.9,0.95,storm
train,c,0,20.0,1.00,calm
train,d,0,19.0,0.99,storm
val,e,0,20.5,1.00,calm
val,f,0,17.5,0.94,storm
test,g,0,20.1,1.02,calm
test,g,1,20.3,1.02,calm
"""


def test_csv_round_trips_with_padding_and_true_lengths(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text(CSV)
    task = load_task(f"file:{path}", normalize=False)
    assert_well_formed(task)
    assert task.classes == ("calm", "storm") and task.input_spec.seq_len == 3 and task.input_spec.features == 2
    assert task.train.lengths.tolist() == [2, 3, 1, 1] and task.test.lengths.tolist() == [2]
    expected_b = torch.tensor([[18.2, 0.97], [18.0, 0.96], [17.9, 0.95]])  # rows sorted by step
    assert torch.equal(task.train.x[1], expected_b)
    assert torch.equal(task.train.x[0, 2], torch.zeros(2)) and not task.train.mask[0, 2]
    assert task.train.y.tolist() == [0, 1, 0, 1] and task.val.y.tolist() == [0, 1]


def test_csv_standardisation_ignores_padding(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text(CSV)
    task = load_task(f"file:{path}")
    real = task.train.x[task.train.mask].double()
    assert torch.allclose(real.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert (task.train.x[~task.train.mask] == 0).all()


def _bad_npz(change: str) -> dict[str, np.ndarray]:
    arrays = _arrays()
    if change == "ragged":
        arrays["X_test"] = np.array([np.zeros((5, 3)), np.zeros((4, 3))], dtype=object)
    elif change == "steps":
        arrays["X_test"] = np.zeros((9, 6, 3))
    elif change == "nan":
        arrays["X_train"][4, 2, 1] = np.nan
    elif change == "inf":
        arrays["X_val"][1, 0, 0] = np.inf
    elif change == "complex":
        arrays["y_train"] = np.ones(30, dtype=complex)
    elif change == "bool":
        arrays["y_test"] = np.ones(9, dtype=bool)
    elif change == "unseen":
        arrays["y_test"][3] = "fox"
    elif change == "one class":
        for split in ("train", "val", "test"):
            arrays[f"y_{split}"][:] = "cat"
    elif change == "empty":
        arrays["X_val"], arrays["y_val"] = np.zeros((0, 5, 3)), np.array([], dtype=str)
    elif change == "lengths":
        arrays["y_train"] = arrays["y_train"][:-1]
    elif change == "missing":
        del arrays["y_test"]
    elif change == "extra":
        arrays["X_valid"] = arrays.pop("X_val")
    return arrays


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ragged", r"data.npz: array X_test is an object array \(ragged"),
        ("steps", r"data.npz: X_test has 6 steps but X_train has 5"),
        ("nan", r"data.npz: X_train holds nan at sample 4, step 2, feature 1; features must be finite"),
        ("inf", r"data.npz: X_val holds inf at sample 1, step 0, feature 0"),
        ("complex", r"data.npz: y_train has dtype complex128; labels must be integers, strings or floats"),
        ("bool", r"data.npz: y_test has dtype bool; labels must be integers, strings or floats"),
        ("unseen", r"data.npz: y_test has class 'fox' that y_train lacks; known classes: cat, dog, eel"),
        ("one class", r"data.npz: y_train has 1 class \(cat\); at least 2 are needed"),
        ("empty", r"data.npz: X_val is empty"),
        ("lengths", r"data.npz: X_train has 30 samples but y_train has 29"),
        ("missing", r"data.npz: missing array 'y_test'; required: X_train, y_train, X_test, y_test"),
        ("extra", r"data.npz: unexpected array\(s\) \['X_valid'\]; allowed:"),
    ],
)
def test_bad_npz_is_refused_naming_file_array_and_value(tmp_path, change, message):
    with pytest.raises(TaskError, match=message):
        load_task(_npz(tmp_path, **_bad_npz(change)))


def test_too_few_training_samples_for_a_validation_split(tmp_path):
    arrays = {"X_train": np.zeros((2, 3)), "y_train": np.array([0, 1]), "X_test": np.zeros((1, 3)), "y_test": np.array([0])}
    with pytest.raises(TaskError, match="X_train has 2 samples, too few to hold out a validation fraction of 0.2"):
        load_task(_npz(tmp_path, **arrays))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("temp", "split2", 1).replace("split,", "part,", 1), r"missing column 'split'"),
        (lambda t: t.replace("21.9", "warm"), r"feature column 'temp' is not numeric \(line 3: 'warm'\)"),
        (lambda t: t.replace("21.9", "nan"), r"feature column 'temp' holds nan on line 3; features must be finite"),
        (lambda t: t.replace("train,b,2", "train,b,3"), r"sample 'b' \(train\) has step 3 on line 6 where step 2 belongs"),
        (lambda t: t.replace("1.00,calm\ntrain,b", "1.00,storm\ntrain,b"), r"sample 'a' \(train\) has label 'storm' on line 3 but 'calm' before"),
        (lambda t: t.replace("val,e", "valid,e"), r"split column holds 'valid'; allowed: train, val, test"),
        (lambda t: t.replace("test,g", "val,g"), r"no rows with split 'test'"),
        (lambda t: t.replace("1.02,calm", "1.02,fog"), r"label column \(test\) has class 'fog'"),
    ],
)
def test_bad_csv_is_refused_naming_file_column_and_line(tmp_path, edit, message):
    path = tmp_path / "weather.csv"
    path.write_text(edit(CSV))
    with pytest.raises(TaskError, match=r"weather.csv: .*" + message):
        load_task(f"file:{path}")


def test_missing_file_and_unknown_extension_are_refused(tmp_path):
    with pytest.raises(TaskError, match=r"nothing.npz: no such file"):
        load_task(f"file:{tmp_path / 'nothing.npz'}")
    (tmp_path / "data.parquet").write_bytes(b"")
    with pytest.raises(TaskError, match=r"data.parquet: extension '.parquet' is not supported; allowed: .npz, .csv"):
        load_task(f"file:{tmp_path / 'data.parquet'}")


def test_validation_fraction_must_be_a_proper_fraction(tmp_path):
    arrays = {k: v for k, v in _arrays().items() if not k.endswith("_val")}
    with pytest.raises(TaskError, match=r"val_fraction=1.5 must lie strictly between 0 and 1"):
        load_task(_npz(tmp_path, **arrays), val_fraction=1.5)
    assert len(load_task(_npz(tmp_path, **arrays), val_fraction=0.5).val) == 15
