"""``scripts/predict.py``: an export's predictions for a file of new data, as a CSV, with known labels scored."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from nas import load_predictor
from nas.cli import predict_main
from tests.support import exports
from tests.support.exports import export, export_file, long_table, series


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    """An export of an .npz task with string labels, its archive, and new data as an archive of X and y."""
    tmp_path = tmp_path_factory.mktemp("predict")
    out, _, x_test, y_test = exports.weather(tmp_path)
    new = tmp_path / "new.npz"
    np.savez(new, X=x_test, y=y_test)
    return out, tmp_path / "weather.npz", new, x_test


def test_predictions_match_the_predictor_and_known_labels_are_scored(weather, tmp_path, capsys):
    out, _, new, x_test = weather
    assert predict_main([str(out), str(new), "--out", str(tmp_path / "p.csv"), "--proba"]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["sample", "prediction", "label", "p_calm", "p_gust", "p_storm"]
    assert list(table["sample"]) == list(range(60))
    assert list(table["prediction"]) == list(load_predictor(out).predict(x_test))
    np.testing.assert_allclose(table[["p_calm", "p_gust", "p_storm"]].sum(axis=1), 1, rtol=1e-5)
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert capsys.readouterr().err == f"predicted 60 samples to {tmp_path / 'p.csv'}; accuracy {test:.4f} against " \
                                      f"the labels given\n"


def test_without_out_the_csv_goes_to_standard_output_and_the_summary_to_standard_error(weather, capsys):
    out, _, new, x_test = weather
    np.savez(new.with_name("unlabelled.npz"), X=x_test[:5])
    assert predict_main([str(out), str(new.with_name("unlabelled.npz"))]) == 0
    printed = capsys.readouterr()
    table = pd.read_csv(io.StringIO(printed.out))
    assert list(table.columns) == ["sample", "prediction"] and len(table) == 5
    assert printed.err == "predicted 5 samples\n"


def test_the_training_archive_is_read_by_naming_its_arrays(weather, tmp_path, capsys):
    out, archive, _, x_test = weather
    assert predict_main([str(out), str(archive)]) == 2
    assert capsys.readouterr().err == (f"predict.py: error: {archive}: no array 'X'; arrays there: X_test, X_train, "
                                       f"y_test, y_train (pick one with --x)\n")
    assert predict_main([str(out), str(archive), "--x", "X_test", "--y", "y_test"]) == 0
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert capsys.readouterr().err.endswith(f"accuracy {test:.4f} against the labels given\n")


def test_an_npy_array_is_read_as_the_samples(weather, tmp_path, capsys):
    out, _, _, x_test = weather
    np.save(tmp_path / "x.npy", x_test[:7])
    assert predict_main([str(out), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "p.csv")["prediction"]) == list(load_predictor(out).predict(x_test[:7]))


def test_an_existing_out_is_kept_unless_forced(weather, tmp_path, capsys):
    out, _, new, _ = weather
    kept = tmp_path / "p.csv"
    kept.write_text("mine\n")
    assert predict_main([str(out), str(new), "--out", str(kept)]) == 2
    assert capsys.readouterr().err == f"predict.py: error: {kept} exists; pass --force to replace it\n"
    assert kept.read_text() == "mine\n"
    assert predict_main([str(out), str(new), "--out", str(kept), "--force"]) == 0
    assert len(pd.read_csv(kept)) == 60 and sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


@pytest.mark.parametrize("make, expected", [
    (lambda d: np.savez(d / "ragged.npz", X=np.array([np.zeros(3), np.zeros(4)], dtype=object)),
     "holds an object array (ragged or mixed types), which is never unpickled"),
    (lambda d: (d / "bad.npz").write_text("not an archive"), "not a readable array file"),
    (lambda d: np.savez(d / "flat.npz", X=np.zeros(5)), "X has shape (5,); expected (samples, steps)"),
    (lambda d: np.savez(d / "short.npz", X=np.zeros((4, 24, 3)), y=np.array(["calm"])),
     "y has 1 labels for 4 samples"),
    (lambda d: np.savez(d / "wide.npz", X=np.zeros((4, 24, 2))), "sample 0 has shape (24, 2); the model reads (steps, 3)"),
    (lambda d: np.savez(d / "gap.npz", X=np.full((2, 24, 3), np.nan)), "sample 0 holds nan; features must be finite"),
    (lambda d: (d / "data.txt").write_text("1,2"), "extension '.txt' is not supported; allowed: .npz, .npy, .csv"),
])
def test_bad_data_is_one_line_naming_it_and_nothing_is_written(weather, tmp_path, capsys, make, expected):
    out = weather[0]
    make(tmp_path)
    data = next(p for p in tmp_path.iterdir())
    assert predict_main([str(out), str(data), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("predict.py: error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.csv").exists()


def test_a_folder_that_is_no_export_and_a_missing_device_are_refused(weather, tmp_path, capsys):
    _, _, new, _ = weather
    assert predict_main([str(tmp_path), str(new)]) == 2
    assert "is missing arch.json" in capsys.readouterr().err
    assert predict_main([str(weather[0]), str(new), "--device", "tpu"]) == 2
    assert "device='tpu' is not a device" in capsys.readouterr().err


def test_a_csv_model_predicts_a_long_table_split_by_split(tmp_path, capsys):
    frame = long_table(np.random.default_rng(2))
    frame.to_csv(tmp_path / "weather.csv", index=False)
    out = export_file(tmp_path, tmp_path / "weather.csv", "weather")
    assert predict_main([str(out), str(tmp_path / "weather.csv"), "--split", "test",
                         "--out", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    test = frame[frame["split"] == "test"]
    assert list(table["sample"]) == list(test["sample"].unique())
    assert list(table["label"]) == list(test.groupby("sample", sort=False)["label"].first())
    expected = load_predictor(out).predict_frame(test)
    assert list(table["prediction"]) == list(expected[table["sample"]])
    accuracy = json.loads((out / "metrics.json").read_text())["test"]
    assert capsys.readouterr().err.endswith(f"accuracy {accuracy:.4f} against the labels given\n")
    assert predict_main([str(out), str(tmp_path / "weather.csv"), "--split", "val"]) == 2
    assert capsys.readouterr().err.endswith("no rows with split 'val'; splits there: test, train\n")
    test.assign(label=np.where(test["step"] == 3, "storm", test["label"])).to_csv(tmp_path / "mixed.csv", index=False)
    assert predict_main([str(out), str(tmp_path / "mixed.csv")]) == 2
    assert "sample 'test-0' has more than one label" in capsys.readouterr().err


def test_integer_classes_match_labels_given_as_text_and_regression_is_scored_by_mse(tmp_path, capsys):
    rng = np.random.default_rng(3)
    (x_train, y_train), (x_test, y_test) = series(rng, 90), series(rng, 30)
    codes = np.array([3, 7, 11])
    out, _ = export(tmp_path, codes[y_train], codes[y_test], x_train, x_test, "codes")
    np.savez(tmp_path / "text.npz", X=x_test, y=codes[y_test].astype(str))
    assert predict_main([str(out), str(tmp_path / "text.npz")]) == 0
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert capsys.readouterr().err.endswith(f"accuracy {test:.4f} against the labels given\n")

    level = y_test.astype(np.float32) * 1.5
    out, _ = export(tmp_path, y_train.astype(np.float32) * 1.5, level, x_train, x_test, "level")
    np.savez(tmp_path / "level.npz", X=x_test, y=level)
    assert predict_main([str(out), str(tmp_path / "level.npz")]) == 0
    mse = np.mean((load_predictor(out).predict(x_test) - level) ** 2)
    assert capsys.readouterr().err.endswith(f"mse {mse:.4f} against the labels given\n")
    assert predict_main([str(out), str(tmp_path / "level.npz"), "--proba"]) == 2
    assert "class probabilities need a classification model" in capsys.readouterr().err
