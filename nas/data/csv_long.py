"""The long ``.csv`` format for ``file:<path>``: one row per time step of one sample.

Columns ``split`` (train / val / test; val optional), ``sample`` (an id, unique
within its split), ``step`` (0, 1, ... without gaps), ``label`` (the sample's
label, repeated on each of its rows) and one or more numeric feature columns
named anything else. Samples may have different numbers of steps; they are
zero-padded and masked. See docs/tasks.md for an example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nas.data.base import TaskError
from nas.data.prepare import RawSplit

COLUMNS = ("split", "sample", "step", "label")
SPLIT_NAMES = ("train", "val", "test")


def read_csv(file: Path) -> tuple[dict[str, RawSplit], tuple[str, ...]]:
    """The splits of a long-format CSV, samples in order of first appearance, and its feature columns in order."""
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise TaskError(f"{file}: not a readable CSV ({str(err).splitlines()[0]})") from None
    features = _check_columns(frame, file)
    frame = frame.assign(_line=np.arange(len(frame)) + 2)  # 1-based, after the header line
    raw: dict[str, RawSplit] = {}
    for split in SPLIT_NAMES:
        rows = frame[frame["split"] == split]
        if len(rows):
            raw[split] = _split(rows, features, split, file)
    for split in ("train", "test"):
        if split not in raw:
            raise TaskError(f"{file}: no rows with split {split!r}; the split column needs train and test rows (val optional)")
    return raw, tuple(str(name) for name in features)


def _check_columns(frame: pd.DataFrame, file: Path) -> list[str]:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise TaskError(f"{file}: missing column {missing[0]!r}; required: {', '.join(COLUMNS)} plus feature columns")
    features = [c for c in frame.columns if c not in COLUMNS]
    if not features:
        raise TaskError(f"{file}: has no feature column; every column besides {', '.join(COLUMNS)} is a feature")
    for column in features:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
            where = f" (line {int(np.argmax(bad.to_numpy())) + 2}: {frame[column][bad].iloc[0]!r})" if bad.any() else ""
            raise TaskError(f"{file}: feature column {column!r} is not numeric{where}")
    values = frame[features].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise TaskError(f"{file}: feature column {features[col]!r} holds {values[row, col]} on line {row + 2}; features must be finite")
    unknown = sorted(set(frame["split"].astype(str)) - set(SPLIT_NAMES))
    if unknown:
        raise TaskError(f"{file}: split column holds {unknown[0]!r}; allowed: {', '.join(SPLIT_NAMES)}")
    if not pd.api.types.is_integer_dtype(frame["step"]):
        raise TaskError(f"{file}: step column must hold integers 0, 1, ..., got dtype {frame['step'].dtype}")
    for column in ("sample", "label"):
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise TaskError(f"{file}: {column} column is empty on line {int(np.argmax(empty)) + 2}")
    return features


def _split(rows: pd.DataFrame, features: list[str], split: str, file: Path) -> RawSplit:
    sample_id, _ = pd.factorize(rows["sample"])  # first appearance order
    order = np.lexsort((rows["step"].to_numpy(), sample_id))
    rows, sample_id = rows.iloc[order], sample_id[order]
    steps = rows["step"].to_numpy()
    starts = np.r_[0, np.flatnonzero(np.diff(sample_id)) + 1]
    lengths = np.diff(np.r_[starts, len(rows)]).astype(np.int64)
    expected = np.arange(len(rows)) - np.repeat(starts, lengths)  # 0..len-1 within each sample
    if (steps != expected).any():
        i = int(np.argmax(steps != expected))
        raise TaskError(
            f"{file}: sample {rows['sample'].iloc[i]!r} ({split}) has step {steps[i]} on line {rows['_line'].iloc[i]} "
            f"where step {expected[i]} belongs; steps must run 0, 1, ... without gaps or repeats"
        )
    labels = rows["label"].to_numpy()
    first = np.repeat(labels[starts], lengths)
    if (labels != first).any():
        i = int(np.argmax(labels != first))
        raise TaskError(
            f"{file}: sample {rows['sample'].iloc[i]!r} ({split}) has label {labels[i]!r} on line "
            f"{rows['_line'].iloc[i]} but {first[i]!r} before; a sample has one label"
        )
    x = np.zeros((len(starts), int(lengths.max()), len(features)), dtype=np.float64)
    x[np.repeat(np.arange(len(starts)), lengths), steps] = rows[features].to_numpy(dtype=np.float64)
    y = labels[starts]
    if y.dtype == object:
        y = y.astype(str)
    return RawSplit(x, lengths, y, f"feature columns ({split})", f"label column ({split})")
