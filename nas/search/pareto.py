"""Pareto dominance over objective vectors with mixed directions, for the search's keeper and the report.

>>> pareto_mask([[0.9, 5.0], [0.8, 2.0], [0.7, 3.0]], maximize=[True, False]).tolist()
[True, True, False]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one.

    With one objective this is plain "strictly better", so a tie never dominates.
    """
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    sa, sb = signs * np.asarray(a, dtype=float), signs * np.asarray(b, dtype=float)
    return bool(np.all(sa >= sb) and np.any(sa > sb))


def pareto_mask(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> np.ndarray:
    """Bool per row of ``values`` (n, k): True where no other row dominates it (ties all stay)."""
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    points = signs * np.asarray(values, dtype=float).reshape(len(values), len(signs))  # larger is better now
    return np.array([not np.any(np.all(points >= p, 1) & np.any(points > p, 1)) for p in points], dtype=bool)


__all__ = ["dominates", "pareto_mask"]
