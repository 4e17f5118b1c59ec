"""``ucr:<Name>``: the UCR/UEA classification sets that ship inside aeon, read with aeon's loader, offline.

The official train split is divided into a stratified, seeded train/validation
pair; the official test split stays the test split, so scores compare with the
published ones :func:`published_accuracies` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.core.registry import unknown_name_message
from nas.data.base import Task, TaskError
from nas.data.prepare import RawSplit, continuous_task, pad_series
from nas.data.registry import register_task

# aeon's result-file names -> the names references are reported under.
REFERENCE_METHODS = {"InceptionTime": "InceptionTime", "HC2": "HIVE-COTE 2"}


def aeon_root() -> Path:
    import aeon

    return Path(aeon.__file__).parent


def bundled_dir() -> Path:
    """Where aeon keeps the data sets it ships (``aeon/datasets/data``)."""
    return aeon_root() / "datasets" / "data"


def ucr_names() -> list[str]:
    """Bundled classification sets: ``<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts`` (aeon's rule), class labels in the header."""
    root = bundled_dir()
    names = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        train, test = folder / f"{folder.name}_TRAIN.ts", folder / f"{folder.name}_TEST.ts"
        if train.is_file() and test.is_file() and _has_class_labels(train):
            names.append(folder.name)
    return names


def _has_class_labels(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.lower().split()
            if words[:1] == ["@data"]:
                return False
            if words[:2] == ["@classlabel", "true"]:
                return True
    return False


def load_ucr(dataset: str, *, seed: int, val_fraction: float = 0.2) -> Task:
    """Load a bundled set; variable-length series (JapaneseVowels) are zero-padded with a mask, never truncated.

    aeon gives ``(n, channels, steps)``; the task holds ``(n, steps, channels)``.
    """
    available = ucr_names()
    if dataset not in available:
        # Checked here because aeon would otherwise try to download the set.
        raise TaskError(unknown_name_message("UCR data set", dataset, available))
    from aeon.datasets import load_classification

    raw: dict[str, RawSplit] = {}
    classes: tuple[str, ...] = ()
    for split in ("train", "test"):
        X, y, meta = load_classification(
            dataset, split=split, extract_path=str(bundled_dir()), return_metadata=True,
            load_equal_length=False, load_no_missing=False,
        )
        if isinstance(X, np.ndarray):
            x, lengths = X.transpose(0, 2, 1).astype(np.float64), np.full(len(X), X.shape[2], dtype=np.int64)
        else:
            x, lengths = pad_series([np.asarray(s, dtype=np.float64).T for s in X])
        raw[split] = RawSplit(x, lengths, np.asarray(y).astype(str), f"{dataset} {split} series", f"{dataset} {split} labels")
        classes = tuple(str(c) for c in meta["class_values"])
    return continuous_task(f"ucr:{dataset}", seed, raw, source=f"ucr:{dataset}", classes=classes, val_fraction=val_fraction)


def published_accuracies(dataset: str) -> dict[str, float]:
    """Test accuracy of InceptionTime and HIVE-COTE 2 from the result files aeon ships, read with aeon's loader.

    Each value is the mean over all resamples in the file (30; resample 0 is the
    official train/test split). Sets missing from the files (the multivariate
    ones, e.g. BasicMotions) give ``{}``.
    """
    from aeon.benchmarking.results_loaders import get_estimator_results

    results = get_estimator_results(
        list(REFERENCE_METHODS), datasets=[dataset], num_resamples=None,
        path=str(aeon_root() / "testing" / "example_results_files"),
    )
    return {
        REFERENCE_METHODS[method]: float(np.mean(scores[dataset]))
        for method, scores in results.items() if dataset in scores
    }


register_task("ucr", argument="name", listing=ucr_names, references=published_accuracies)(load_ucr)
