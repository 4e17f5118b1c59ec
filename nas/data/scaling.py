"""The standardisation a continuous task applies, kept so that new data can be given to its models the same way.

A model trained on a task saw z-scores from the training split's statistics;
the export records them, and :mod:`nas.models.predictor` applies them to raw input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.core.checks import SpecError


@dataclass(frozen=True)
class Scaling:
    """Per-feature mean and standard deviation of the training split's real (unpadded) steps."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise SpecError(f"scaling has {len(self.mean)} means and {len(self.std)} standard deviations; "
                            f"it needs one of each per feature")
        if not all(s > 0 for s in self.std):
            raise SpecError(f"scaling std={self.std} must be > 0 for every feature")

    @classmethod
    def fit(cls, steps: np.ndarray) -> "Scaling":
        """From ``steps`` (real steps, features); a constant feature (digits' empty border) keeps std 1, so it stays
        finite."""
        mean, std = steps.mean(axis=0), steps.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def apply(self, x: np.ndarray, real: np.ndarray) -> np.ndarray:
        """``x`` (n, steps, features) as z-scores, computed in ``x``'s own precision; padding (``real`` False)
        stays 0."""
        z = (x - np.asarray(self.mean, dtype=x.dtype)) / np.asarray(self.std, dtype=x.dtype)
        z[~real] = 0.0
        return z

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scaling":
        try:
            return cls(tuple(float(m) for m in data["mean"]), tuple(float(s) for s in data["std"]))
        except (KeyError, TypeError, ValueError) as err:
            raise SpecError(f"scaling {data!r} must hold lists 'mean' and 'std' of numbers: {err}") from None


__all__ = ["Scaling"]
