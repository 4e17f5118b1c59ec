"""``file:<path>``: the user's own data, from a ``.npz`` archive or a long-format ``.csv`` (docs/tasks.md).

The archive holds ``X_train, y_train, X_test, y_test`` and optionally
``X_val, y_val``; ``X`` is ``(samples, steps, features)`` or ``(samples, steps)``
for one feature. Integer or string labels make a classification task, float
labels a regression task. Without ``X_val`` a stratified, seeded validation
split is taken from train.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nas.data.base import Task, TaskError
from nas.data.csv_long import read_csv
from nas.data.prepare import RawSplit, continuous_task
from nas.data.registry import register_task

REQUIRED = ("X_train", "y_train", "X_test", "y_test")
OPTIONAL = ("X_val", "y_val")


@register_task("file", argument="path")
def load_file(path: str, *, seed: int, val_fraction: float = 0.2, normalize: bool = True) -> Task:
    """Load ``path``; ``normalize=False`` keeps the features exactly as stored.

    >>> task = load_task("file:data/mine.npz", seed=0)  # doctest: +SKIP
    """
    file = Path(path).expanduser().resolve()
    readers = {".npz": read_npz, ".csv": read_csv}
    if file.suffix.lower() not in readers:
        raise TaskError(f"{file}: extension {file.suffix!r} is not supported; allowed: {', '.join(readers)}")
    if not file.is_file():
        raise TaskError(f"{file}: no such file")
    raw, features = readers[file.suffix.lower()](file)
    return continuous_task(
        f"file:{file}", seed, raw, source=str(file), val_fraction=val_fraction, normalize=normalize,
        feature_names=features,
    )


def read_npz(file: Path) -> tuple[dict[str, RawSplit], None]:
    """The splits of a ``.npz`` archive, read without unpickling (object arrays are refused); its features have
    no names."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise TaskError(f"{file}: not a readable .npz archive ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise TaskError(f"{file}: holds a single array, not an .npz archive of {', '.join(REQUIRED)}")
    with archive:
        names = set(archive.files)
        unknown = sorted(names - set(REQUIRED + OPTIONAL))
        if unknown:
            raise TaskError(f"{file}: unexpected array(s) {unknown}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise TaskError(f"{file}: missing array {missing[0]!r}; required: {', '.join(REQUIRED)} (X_val, y_val optional)")
        if len(names & set(OPTIONAL)) == 1:
            raise TaskError(f"{file}: has {sorted(names & set(OPTIONAL))[0]} without its partner; give both X_val and y_val or neither")
        arrays = {name: _array(archive, name, file) for name in sorted(names)}
    raw: dict[str, RawSplit] = {}
    for split in ("train", "val", "test"):
        if f"X_{split}" in arrays:
            x = _features(arrays[f"X_{split}"], f"X_{split}", file)
            lengths = np.full(len(x), x.shape[1], dtype=np.int64)
            raw[split] = RawSplit(x, lengths, arrays[f"y_{split}"], f"X_{split}", f"y_{split}")
    for split, part in raw.items():
        if part.x.shape[1] != raw["train"].x.shape[1]:
            raise TaskError(
                f"{file}: X_{split} has {part.x.shape[1]} steps but X_train has {raw['train'].x.shape[1]}; "
                "all splits need the same number of steps (or use the .csv format for varying lengths)"
            )
    return raw, None


def _array(archive: np.lib.npyio.NpzFile, name: str, file: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError:
        raise TaskError(
            f"{file}: array {name} is an object array (ragged or mixed types); "
            "store rectangular arrays of numbers or strings"
        ) from None


def _features(x: np.ndarray, name: str, file: Path) -> np.ndarray:
    if x.dtype.kind not in "iuf":
        raise TaskError(f"{file}: {name} has dtype {x.dtype}; features must be integers or floats")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise TaskError(f"{file}: {name} has shape {x.shape}; expected (samples, steps) or (samples, steps, features)")
    return x.astype(np.float64)
