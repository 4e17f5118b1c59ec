"""Arrays to a :class:`Task`: validation, label ids, seeded splits, padding and normalisation.

Shared by every continuous source (digits, UCR, the user's files), so that all of
them obey the same rules: everything is checked before any tensor is built
(nothing half-loaded), the validation split is stratified and seeded, and the
standardisation statistics come from the training split alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nas.data.spec import InputSpec
from nas.data.base import Split, Task, TaskError
from nas.data.scaling import Scaling

SPLITS = ("train", "val", "test")


@dataclass
class RawSplit:
    """One split before it becomes tensors: ``x`` (n, steps, features) zero-padded, true ``lengths``, raw ``y``.

    ``x_name`` and ``y_name`` are what error messages call the arrays (``X_train``,
    ``label column``).
    """

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    x_name: str
    y_name: str


def pad_series(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(steps_i, features)`` arrays into zero-padded ``(n, max_steps, features)`` plus the lengths."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    features = series[0].shape[1] if series else 0
    x = np.zeros((len(series), int(lengths.max(initial=0)), features), dtype=np.float64)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    return x, lengths


def real_positions(lengths: np.ndarray, width: int) -> np.ndarray:
    """Boolean (n, width): True where a step is real, False where it is padding."""
    return np.arange(width)[None, :] < lengths[:, None]


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): ``fraction`` of each class held out, at least one of each class kept.

    ``labels`` are class ids; pass ``np.zeros(n)`` for an unstratified split.
    """
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held.append(idx[: min(int(fraction * len(idx) + 0.5), len(idx) - 1)])
    out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), out), out


def split_rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per use of the seed, so one split never shifts another."""
    return np.random.default_rng([seed, stream])


def continuous_task(
    name: str,
    seed: int,
    raw: dict[str, RawSplit],
    *,
    source: str,
    classes: tuple[str, ...] | None = None,
    val_fraction: float = 0.2,
    normalize: bool = True,
    feature_names: tuple[str, ...] | None = None,
) -> Task:
    """Build a task from ``raw["train"]``, ``raw["test"]`` and optionally ``raw["val"]``.

    Without ``val`` a seeded ``val_fraction`` of train is held out (stratified by
    class). Labels that are integers or strings make a classification task, floats
    a regression task; ``classes`` fixes the id order (default: sorted train labels). ``feature_names`` (a
    CSV's columns) travel with the task, so that new data can be matched to them by name.
    """
    for part in raw.values():
        _check_arrays(source, part)
    _check_features(source, raw)
    target = _target(source, raw)
    val_given = "val" in raw
    if target == "classification":
        classes, ids = _encode(source, raw, classes)
        train_ids = ids["train"]
    else:
        classes, ids = None, {s: r.y.astype(np.float32) for s, r in raw.items()}
        train_ids = np.zeros(len(raw["train"].y), dtype=np.int64)
    if "val" not in raw:
        raw, ids = _hold_out_val(source, raw, ids, train_ids, val_fraction, seed)
    width = max(r.x.shape[1] for r in raw.values())
    xs = {s: _widen(r.x, width) for s, r in raw.items()}
    scaling = None
    if normalize:
        xs, scaling = _standardize(xs, {s: r.lengths for s, r in raw.items()})
    ragged = any((r.lengths < width).any() for r in raw.values())
    splits = {s: _to_split(xs[s], ids[s], raw[s].lengths if ragged else None) for s in SPLITS}
    y = ids["train"]
    spec = InputSpec(
        seq_len=width,
        num_outputs=len(classes) if classes is not None else (1 if y.ndim == 1 else y.shape[1]),
        features=xs["train"].shape[2],
        target=target,
    )
    metric = "accuracy" if target == "classification" else "mse"
    return Task(name, splits["train"], splits["val"], splits["test"], spec, metric, classes, seed, val_given,
                scaling=scaling, feature_names=feature_names,
                integer_labels=target == "classification" and raw["train"].y.dtype.kind in "iu")


def _hold_out_val(
    source: str, raw: dict[str, RawSplit], ids: dict[str, np.ndarray], strata: np.ndarray, fraction: float, seed: int
) -> tuple[dict[str, RawSplit], dict[str, np.ndarray]]:
    train = raw["train"]
    if not 0 < fraction < 1:
        raise TaskError(f"{source}: val_fraction={fraction} must lie strictly between 0 and 1")
    keep, held = stratified_split(strata, fraction, split_rng(seed, 1))
    if len(held) == 0:
        raise TaskError(
            f"{source}: {train.x_name} has {len(train.y)} samples, too few to hold out a validation "
            f"fraction of {fraction} with one sample of each class kept; provide a validation split"
        )
    raw = {**raw, "train": _take(train, keep), "val": _take(train, held)}
    return raw, {**ids, "train": ids["train"][keep], "val": ids["train"][held]}


def _check_arrays(source: str, part: RawSplit) -> None:
    if len(part.x) == 0:
        raise TaskError(f"{source}: {part.x_name} is empty; every split needs at least 1 sample")
    if part.x.ndim != 3 or part.x.shape[2] == 0:
        raise TaskError(f"{source}: {part.x_name} has shape {part.x.shape}; expected (samples, steps, features>=1)")
    if len(part.y) != len(part.x):
        raise TaskError(f"{source}: {part.x_name} has {len(part.x)} samples but {part.y_name} has {len(part.y)}")
    real = part.x[real_positions(part.lengths, part.x.shape[1])]
    bad = ~np.isfinite(real)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        ends = np.cumsum(part.lengths)
        sample = int(np.searchsorted(ends, row, side="right"))
        step = int(row - (ends[sample - 1] if sample else 0))
        raise TaskError(
            f"{source}: {part.x_name} holds {real[row, col]} at sample {sample}, step {step}, feature {col}; "
            "features must be finite"
        )


def _check_features(source: str, raw: dict[str, RawSplit]) -> None:
    train = raw["train"]
    for part in raw.values():
        if part.x.shape[2] != train.x.shape[2]:
            raise TaskError(
                f"{source}: {part.x_name} has {part.x.shape[2]} features but {train.x_name} has {train.x.shape[2]}"
            )


def _label_kind(source: str, part: RawSplit) -> str:
    kind = part.y.dtype.kind
    if kind in "iuUS":
        if part.y.ndim != 1:
            raise TaskError(f"{source}: {part.y_name} has shape {part.y.shape}; class labels must be 1-D (samples,)")
        return "classification"
    if kind == "f":
        if part.y.ndim not in (1, 2) or not np.isfinite(part.y).all():
            raise TaskError(f"{source}: {part.y_name} must be finite floats of shape (samples,) or (samples, targets)")
        return "regression"
    raise TaskError(f"{source}: {part.y_name} has dtype {part.y.dtype}; labels must be integers, strings or floats")


def _target(source: str, raw: dict[str, RawSplit]) -> str:
    kinds = {s: _label_kind(source, r) for s, r in raw.items()}
    for s, kind in kinds.items():
        if kind != kinds["train"]:
            raise TaskError(
                f"{source}: {raw[s].y_name} is {raw[s].y.dtype} but {raw['train'].y_name} is "
                f"{raw['train'].y.dtype}; all splits need the same label type"
            )
    return kinds["train"]


def _encode(
    source: str, raw: dict[str, RawSplit], classes: tuple[str, ...] | None
) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    labels = {s: r.y.astype(str) for s, r in raw.items()}
    if classes is None:
        order = np.unique(raw["train"].y)  # numeric order for integers, text order for strings
        classes = tuple(str(v) for v in order)
    if len(classes) < 2:
        raise TaskError(f"{source}: {raw['train'].y_name} has {len(classes)} class ({', '.join(classes)}); at least 2 are needed")
    index = {c: i for i, c in enumerate(classes)}
    ids: dict[str, np.ndarray] = {}
    for s, values in labels.items():
        unknown = sorted(set(values.tolist()) - set(index))
        if unknown:
            raise TaskError(
                f"{source}: {raw[s].y_name} has class {unknown[0]!r} that {raw['train'].y_name} lacks; "
                f"known classes: {', '.join(classes)}"
            )
        ids[s] = np.array([index[v] for v in values.tolist()], dtype=np.int64)
    return tuple(classes), ids


def _take(part: RawSplit, idx: np.ndarray) -> RawSplit:
    return RawSplit(part.x[idx], part.lengths[idx], part.y[idx], part.x_name, part.y_name)


def _widen(x: np.ndarray, width: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0))) if x.shape[1] < width else x


def _standardize(xs: dict[str, np.ndarray], lengths: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Scaling]:
    """Per-feature z-scores with train-only, mask-aware statistics; padding stays 0."""
    width = xs["train"].shape[1]
    scaling = Scaling.fit(xs["train"][real_positions(lengths["train"], width)])
    return {s: scaling.apply(x, real_positions(lengths[s], width)) for s, x in xs.items()}, scaling


def _to_split(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None) -> Split:
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y_t = torch.from_numpy(np.ascontiguousarray(y))
    if lengths is None:
        return Split(x_t, y_t)
    mask = torch.from_numpy(real_positions(lengths, x.shape[1]))
    return Split(x_t, y_t, mask, torch.from_numpy(lengths.astype(np.int64)))
