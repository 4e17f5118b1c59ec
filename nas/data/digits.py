"""``digits``, the default task: scikit-learn's bundled 8x8 handwritten digits, read row by row.

Small (1,797 images), offline and quick to fit on a CPU, yet a real sequence
task: each image is 8 steps (rows) of 8 features (pixels), 10 classes.
"""

from __future__ import annotations

import numpy as np

from nas.data.base import Task
from nas.data.prepare import RawSplit, continuous_task, split_rng, stratified_split
from nas.data.registry import register_task


@register_task("digits")
def load_digits(*, seed: int) -> Task:
    """Stratified, seeded 60/20/20 train/validation/test split; pixels standardised with train statistics."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = data.images.astype(np.float64)  # (1797, 8, 8): rows are steps
    y = data.target.astype(np.int64)
    rest, test = stratified_split(y, 0.2, split_rng(seed, 0))
    lengths = np.full(len(y), 8, dtype=np.int64)
    raw = {
        name: RawSplit(x[idx], lengths[idx], y[idx], f"X_{name}", f"y_{name}")
        for name, idx in (("train", rest), ("test", test))
    }
    # 0.25 of the remaining 80% is 20% of the whole.
    return continuous_task("digits", seed, raw, source="digits", val_fraction=0.25)
