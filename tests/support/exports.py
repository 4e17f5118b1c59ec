"""Exports of small file tasks whose features are far from unit scale: what the predictor and predict.py tests use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas.data import Task, load_task
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


def long_table(rng: np.random.Generator) -> pd.DataFrame:
    """A long-format CSV task's rows: two named features, samples of 8 to 12 steps, train and test splits."""
    rows = []
    for split, n in (("train", 60), ("test", 30)):
        for i in range(n):
            label = int(rng.integers(0, 2))
            for step in range(int(rng.integers(8, 13))):  # samples of different lengths: padded and masked
                rows.append((split, f"{split}-{i}", step, 100 + 10 * label + rng.normal(), rng.normal(), LABELS[label]))
    return pd.DataFrame(rows, columns=["split", "sample", "step", "temp", "pressure", "label"])


def export_file(tmp_path: Path, file: Path, name: str) -> Path:
    """A two-trial search on ``file`` with the tiny space, exported with the search's weights."""
    config = SearchConfig(task=f"file:{file}", space="tiny", trials=2, max_epochs=4, cv_below=0,
                          results_dir=str(tmp_path), quiet=True, portfolio=False)
    outcome = run_search(config)
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    return export_trial(study, tmp_path / name / "best", results_dir=tmp_path, final=False, device="cpu").out_dir


def export(tmp_path: Path, y_train, y_test, x_train, x_test, name: str) -> tuple[Path, Task]:
    """The export of an ``.npz`` task made of these arrays, and the task as training saw it."""
    path = tmp_path / f"{name}.npz"
    np.savez(path, X_train=x_train, y_train=y_train, X_test=x_test, y_test=y_test)
    return export_file(tmp_path, path, name), load_task(f"file:{path}", seed=0)


def weather(tmp_path: Path) -> tuple[Path, Task, np.ndarray, np.ndarray]:
    """The export of a three-class task with string labels (written to ``tmp_path/weather.npz``), the task, and
    its raw test series and labels."""
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = series(rng, 120), series(rng, 60)
    out, task = export(tmp_path, LABELS[y_train], LABELS[y_test], x_train, x_test, "weather")
    return out, task, x_test, LABELS[y_test]
