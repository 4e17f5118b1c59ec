"""An exported model used on data as the user holds it: raw series in, the data's own labels out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nas import load_model, load_predictor
from nas.models.saved import ExportError
from tests.support import exports
from tests.support.exports import LABELS, export, export_file, long_table, series


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    return exports.weather(tmp_path_factory.mktemp("weather"))


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
    frame = long_table(np.random.default_rng(2))
    frame.to_csv(tmp_path / "weather.csv", index=False)
    out = export_file(tmp_path, tmp_path / "weather.csv", "weather")
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
