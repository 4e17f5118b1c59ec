"""An exported model used on data as the user holds it: raw series in, the data's own labels out."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from nas import load_model, load_predictor
from nas.data import load_task
from nas.models.saved import ExportError
from nas.results.export import export_trial
from nas.search.config import SearchConfig
from nas.search.run import run_search

LABELS = np.array(["calm", "gust", "storm"])


def series(rng: np.random.Generator, n: int, steps: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Three features far from zero mean and unit scale (a pressure near 1000, a temperature near 20), so a
    model fed them unscaled sees nothing like its training inputs."""
    y = rng.integers(0, 3, n)
    t = np.linspace(0, 1, steps)
    x = np.stack([1000 + 30 * np.sin(2 * np.pi * (1 + y[:, None]) * t) + rng.normal(0, 5, (n, steps)),
                  20 + 4 * y[:, None] + rng.normal(0, 1, (n, steps)),
                  rng.normal(0, 1, (n, steps))], axis=-1)
    return x.astype(np.float32), y


def export(tmp_path, y_train, y_test, x_train, x_test, name: str):
    path = tmp_path / f"{name}.npz"
    np.savez(path, X_train=x_train, y_train=y_train, X_test=x_test, y_test=y_test)
    config = SearchConfig(task=f"file:{path}", space="tiny", trials=2, max_epochs=4, cv_below=0,
                          results_dir=str(tmp_path), quiet=True, portfolio=False)
    outcome = run_search(config)
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    done = export_trial(study, tmp_path / name / "best", results_dir=tmp_path, final=False, device="cpu")
    return done.out_dir, load_task(f"file:{path}", seed=0)


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("weather")
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = series(rng, 120), series(rng, 60)
    out, task = export(tmp_path, LABELS[y_train], LABELS[y_test], x_train, x_test, "weather")
    return out, task, x_test, LABELS[y_test]


def test_raw_data_gets_the_same_predictions_and_test_accuracy_as_the_task_tensors(weather):
    out, task, x_test, y_test = weather
    predictor = load_predictor(out)
    with torch.no_grad():
        ids = load_model(out)(task.test.x, task.test.mask).argmax(-1).numpy()
    labels = predictor.predict(x_test)
    assert list(labels) == list(LABELS[ids])
    assert np.mean(labels == y_test) == json.loads((out / "metrics.json").read_text())["test"]
    proba = predictor.predict_proba(x_test)
    assert list(predictor.classes) == list(LABELS)
    np.testing.assert_allclose(proba.sum(-1), 1, rtol=1e-5)
    assert list(predictor.classes[proba.argmax(-1)]) == list(labels)


def test_unscaled_input_would_have_changed_the_answer(weather):
    """What the predictor guards against: the bare network given raw values predicts something else."""
    out, task, x_test, _ = weather
    with torch.no_grad():
        model = load_model(out)
        scaled = model(task.test.x).argmax(-1)
        raw = model(torch.from_numpy(x_test)).argmax(-1)
    assert not torch.equal(scaled, raw)


def test_shorter_series_are_padded_and_masked_and_bad_shapes_name_the_sample(weather):
    out, _, x_test, _ = weather
    predictor = load_predictor(out)
    ragged = [x_test[0], x_test[1][:10], x_test[2][:1]]
    assert predictor.predict(ragged).shape == (3,)
    with pytest.raises(ValueError, match=r"sample 1 has 25 steps; the model reads 1 to 24"):
        predictor.predict([x_test[0], np.concatenate([x_test[1], x_test[1][:1]])])
    with pytest.raises(ValueError, match=r"sample 0 has shape \(24, 2\); the model reads \(steps, 3\) series$"):
        predictor.predict(x_test[:, :, :2])
    with pytest.raises(ValueError, match=r"has shape \(3, 24\); .* transpose it \(aeon and sktime"):
        predictor.predict(x_test.transpose(0, 2, 1))  # aeon's (n, channels, steps)
    gap = x_test[:2].copy()
    gap[1, 5, 0] = np.nan  # a missing reading would otherwise give an arbitrary label without a word
    with pytest.raises(ValueError, match=r"sample 1 holds nan; features must be finite numbers"):
        predictor.predict(gap)


def test_a_regression_export_predicts_values_on_the_raw_scale_of_its_inputs(tmp_path):
    rng = np.random.default_rng(1)
    (x_train, y_train), (x_test, y_test) = series(rng, 90), series(rng, 30)
    out, task = export(tmp_path, y_train.astype(np.float32) * 1.5, y_test.astype(np.float32) * 1.5, x_train, x_test,
                       "level")
    values = load_predictor(out).predict(x_test)
    with torch.no_grad():
        expected = load_model(out)(task.test.x)[:, 0].numpy()
    assert values.shape == (30,) and values.dtype == np.float32
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)


def test_an_export_without_its_preprocessing_is_refused_with_what_to_do(weather, tmp_path):
    out, _, _, _ = weather
    copy = tmp_path / "old"
    copy.mkdir()
    for file in out.iterdir():
        copy.joinpath(file.name).write_bytes(file.read_bytes())
    metrics = json.loads((copy / "metrics.json").read_text())
    del metrics["preprocessing"]
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ExportError, match="records no preprocessing .* export the trial again"):
        load_predictor(copy)


def test_a_csv_model_reads_a_long_table_by_feature_name_in_any_column_order(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for split, n in (("train", 60), ("test", 30)):
        for i in range(n):
            label = int(rng.integers(0, 2))
            for step in range(int(rng.integers(8, 13))):  # samples of different lengths: padded and masked
                rows.append((split, f"{split}-{i}", step, 100 + 10 * label + rng.normal(), rng.normal(), LABELS[label]))
    frame = pd.DataFrame(rows, columns=["split", "sample", "step", "temp", "pressure", "label"])
    frame.to_csv(tmp_path / "weather.csv", index=False)
    config = SearchConfig(task=f"file:{tmp_path / 'weather.csv'}", space="tiny", trials=2, max_epochs=4, cv_below=0,
                          results_dir=str(tmp_path), quiet=True, portfolio=False)
    outcome = run_search(config)
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    out = export_trial(study, tmp_path / "best", results_dir=tmp_path, final=False, device="cpu").out_dir
    predictor = load_predictor(out)
    assert predictor.features == ("temp", "pressure")
    test = frame[frame["split"] == "test"]
    shuffled = test.sample(frac=1, random_state=0)[["pressure", "label", "step", "sample", "temp"]]  # rows, columns
    predicted = predictor.predict_frame(shuffled)
    truth = test.groupby("sample", sort=False)["label"].first()
    assert sorted(predicted.index) == sorted(truth.index)
    accuracy = (predicted[truth.index] == truth).mean()
    assert accuracy == json.loads((out / "metrics.json").read_text())["test"]
    with pytest.raises(ValueError, match="frame has no column 'temp'; needed: sample, step, temp, pressure"):
        predictor.predict_frame(test.drop(columns="temp"))
    with pytest.raises(ValueError, match=r"sample 'test-0' has steps \[0, 2, .*without gaps"):
        predictor.predict_frame(test[~((test["sample"] == "test-0") & (test["step"] == 1))])


def test_a_model_trained_on_arrays_asks_for_arrays(weather):
    with pytest.raises(ValueError, match=r"trained on arrays, whose features have no names; use predict\(X\)"):
        load_predictor(weather[0]).predict_frame(pd.DataFrame({"sample": [0], "step": [0]}))


def test_integer_labels_come_back_as_integers(tmp_path):
    rng = np.random.default_rng(3)
    (x_train, y_train), (x_test, y_test) = series(rng, 90), series(rng, 30)
    codes = np.array([3, 7, 11])
    out, _ = export(tmp_path, codes[y_train], codes[y_test], x_train, x_test, "codes")
    predicted = load_predictor(out).predict(x_test)
    assert predicted.dtype.kind == "i" and set(predicted) <= {3, 7, 11}
    assert np.mean(predicted == codes[y_test]) == json.loads((out / "metrics.json").read_text())["test"]
