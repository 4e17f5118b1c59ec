"""The peer a time-series user would try first: aeon's MiniRocket, on the same split the search used.

It fits on train + validation (everything the search saw) and is scored on the
same test split. Series of unequal length are given as the task holds them,
zero-padded to the longest (MiniRocket needs equal lengths). The result is cached
as JSON beside the data, so a report does not refit it.

>>> minirocket_baseline(task, seed=0, cache_dir="results/cache")
{'model': 'MiniRocket (aeon 1.6.0)', 'test': 0.993, 'seconds': 1.2, ...}
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from nas.data import Task
from nas.data.folds import pool


def minirocket_baseline(task: Task, seed: int = 0, cache_dir: str | Path | None = None) -> dict[str, Any] | None:
    """MiniRocket's test accuracy on ``task`` (a ``ucr:`` task; None for any other), fitted on train + validation."""
    if not task.name.startswith("ucr:"):
        return None
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{task.name}|{seed}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"minirocket-{key}.json"
        if path.is_file():
            return json.loads(path.read_text())
    from aeon.classification.convolution_based import MiniRocketClassifier

    train = pool(task)
    start = time.perf_counter()
    model = MiniRocketClassifier(random_state=seed, n_jobs=1)
    model.fit(_aeon(train.x), train.y.numpy())
    accuracy = float((model.predict(_aeon(task.test.x)) == task.test.y.numpy()).mean())
    result = {"model": f"MiniRocket (aeon {metadata.version('aeon')})", "test": accuracy,
              "seconds": time.perf_counter() - start, "fit_on": "train+validation", "n_train": len(train),
              "task": task.name, "seed": seed}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _aeon(x) -> np.ndarray:
    """(n, steps, channels) float tensor -> aeon's (n, channels, steps) float64 array."""
    return x.numpy().transpose(0, 2, 1).astype(np.float64)


__all__ = ["minirocket_baseline"]
