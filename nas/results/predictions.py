"""Predictions for a file of new data, one row per sample: what ``scripts/predict.py`` writes.

New data comes as the training files held it, without their split layout: a
``.npz`` archive (``X``, and ``y`` where the answers are known), a ``.npy``
array (``X`` alone) or a long-format ``.csv`` (``sample``, ``step`` and the
features by name; ``label`` where known; ``split`` to keep some rows). Known
answers are scored with the task's metric, so a user sees at once whether the
model holds on their data.

>>> data = read_new_data("new.npz")
>>> table = predictions_table(load_predictor("results/digits-default/best"), data, proba=True)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.models.predictor import Predictor

FORMATS = (".npz", ".npy", ".csv")
ZIP_MAGIC, NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"  # without either, numpy would take the file for a pickle


@dataclass
class NewData:
    """Samples to predict: ``x`` as :meth:`Predictor.predict` takes it, ``samples`` their ids (row numbers for
    arrays), ``y`` the known answers or None. A ``frame`` (long-format CSV) is read into ``x`` by the predictor,
    which knows its features' names."""

    samples: list[Any]
    x: np.ndarray | list[np.ndarray] | None
    y: np.ndarray | None
    frame: pd.DataFrame | None = None


def read_new_data(path: str | Path, *, x_key: str = "X", y_key: str = "y", split: str | None = None) -> NewData:
    """The samples in ``path``; ``x_key`` / ``y_key`` name an archive's arrays (``y_key`` only where present),
    ``split`` keeps a CSV's rows of that split (as in a training file)."""
    file = Path(path).expanduser()
    if file.suffix.lower() not in FORMATS:
        raise ValueError(f"{file}: extension {file.suffix!r} is not supported; allowed: {', '.join(FORMATS)}")
    if not file.is_file():
        raise ValueError(f"{file}: no such file")
    if split is not None and file.suffix.lower() != ".csv":
        raise ValueError(f"--split {split!r} picks rows of a long-format .csv; {file.name} is an array file "
                         f"(name its array with --x instead)")
    if file.suffix.lower() == ".csv":
        return _read_csv(file, split)
    arrays = _read_arrays(file)
    if file.suffix.lower() == ".npy":
        x, y = arrays[None], None
    else:
        if x_key not in arrays:
            raise ValueError(f"{file}: no array {x_key!r}; arrays there: {', '.join(sorted(arrays))} "
                             f"(pick one with --x)")
        x, y = arrays[x_key], arrays.get(y_key)
    if x.ndim not in (2, 3):
        raise ValueError(f"{file}: X has shape {x.shape}; expected (samples, steps) or (samples, steps, features)")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{file}: {y_key} has {len(y)} labels for {len(x)} samples")
    return NewData(list(range(len(x))), x, y)


def _read_arrays(file: Path) -> dict[str | None, np.ndarray]:
    """Every array in an ``.npz`` by name (a ``.npy``'s under None), read without unpickling."""
    with file.open("rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if not magic.startswith(ZIP_MAGIC) and magic != NPY_MAGIC:
        raise ValueError(f"{file}: not a readable array file (neither an .npz archive nor an .npy array)")
    try:
        loaded = np.load(file, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {None: loaded}
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{file}: holds an object array (ragged or mixed types), which is never unpickled; "
                             f"store rectangular arrays of numbers, or series of different lengths as a .csv") from None
        raise ValueError(f"{file}: not a readable array file ({err})") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file}: not a readable array file ({err})") from None


def _read_csv(file: Path, split: str | None) -> NewData:
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if split is not None:
        if "split" not in frame.columns:
            raise ValueError(f"{file}: --split {split!r} given, but the file has no split column")
        kept = frame[frame["split"].astype(str) == split]
        if kept.empty:
            raise ValueError(f"{file}: no rows with split {split!r}; splits there: "
                             f"{', '.join(sorted(frame['split'].astype(str).unique()))}")
        frame = kept
    y = None
    if "label" in frame.columns and "sample" in frame.columns:  # without samples, the predictor says what is needed
        labels = frame.groupby("sample", sort=False)["label"]
        if (labels.nunique(dropna=False) > 1).any():
            sample = (labels.nunique(dropna=False) > 1).idxmax()
            raise ValueError(f"{file}: sample {sample!r} has more than one label; a sample has one label")
        y = labels.first().to_numpy()
    return NewData([], None, y, frame)


def predictions_table(predictor: Predictor, data: NewData, *, proba: bool = False) -> pd.DataFrame:
    """``sample``, ``prediction``, the known ``label`` where given, and with ``proba`` one ``p_<class>`` column
    per class."""
    if predictor.input_spec.per_token:
        raise ValueError("this model predicts one label per position; call load_predictor(...).predict in Python")
    samples, x = (predictor.frame_series(data.frame) if data.frame is not None else (data.samples, data.x))
    outputs = predictor.outputs(x)
    predictions = predictor.decode(outputs)
    table = pd.DataFrame({"sample": samples, "prediction": list(predictions) if predictions.ndim > 1 else predictions})
    if data.y is not None:
        table["label"] = data.y
    if proba:
        names = range(outputs.shape[1]) if predictor.classes is None else predictor.classes
        for name, values in zip(names, predictor.probabilities(outputs).T):
            table[f"p_{name}"] = values
    return table


def score(predictor: Predictor, table: pd.DataFrame) -> tuple[str, float] | None:
    """The task's metric of the predictions against the known labels: accuracy, or mean squared error for
    regression; None where no label was given."""
    if "label" not in table.columns:
        return None
    if predictor.input_spec.target == "classification":
        truth, predicted = table["label"].to_numpy(), table["prediction"].to_numpy()
        if not (_numeric(truth) and _numeric(predicted)):
            truth, predicted = truth.astype(str), predicted.astype(str)  # labels 3 and '3' are one class
        return "accuracy", float(np.mean(truth == predicted))
    truth = table["label"].to_numpy(dtype=np.float64)
    return "mse", float(np.mean((truth - table["prediction"].to_numpy(dtype=np.float64)) ** 2))


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iuf"


__all__ = ["FORMATS", "NewData", "predictions_table", "read_new_data", "score"]
