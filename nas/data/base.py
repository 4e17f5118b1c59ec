"""The two containers every task loader returns: a :class:`Split` of ready tensors and a :class:`Task`.

Tensors are prepared once, at load time (dtype, padding, normalisation), so that
training loops only index them; nothing here runs per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from nas.data.scaling import Scaling
from nas.data.spec import InputSpec

IGNORE_INDEX = -100
"""Label at positions that carry none (per-token tasks); what ``cross_entropy`` ignores by default."""

RECALL_PLATEAU_STEPS = 400
"""Optimiser steps a model may take on a recall task before its curve is judged. Recall forms suddenly after a
plateau whose length follows the updates more than the examples. The short-convolution Transformer of the default
portfolio (batch 128, learning rate 1e-3) sat near chance for 100 steps on 3,200 in-context recall sequences and
reached 0.99 at 250; on 10,000 MQAR sequences it was at 0.33 after 316 steps and 0.73 after 395. Judged after 316
steps in a search, it was pruned as a failure."""


class TaskError(ValueError):
    """Bad data or a bad task name; the one-line message names the file, array or value and the rule."""


@dataclass(frozen=True, eq=False)
class Split:
    """One partition of a task.

    ``x`` is float32 ``(n, seq, features)`` for continuous data or int64 ``(n, seq)``
    for token ids. ``y`` is int64 ``(n,)`` class ids, float32 ``(n,)``/``(n, k)``
    regression targets, or int64 ``(n, seq)`` per-token labels with ``-100`` where
    there is none. ``mask`` (bool ``(n, seq)``, True = real) and ``lengths``
    (int64 ``(n,)``) are None when every sample has the full length.
    """

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor | None = None
    lengths: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value.shape[0] != n:
                raise TaskError(f"Split.{f.name} has {value.shape[0]} samples but x has {n}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(*(None if t is None else t.to(device) for t in (self.x, self.y, self.mask, self.lengths)))


@dataclass(frozen=True, eq=False)
class Task:
    """A loaded data set: three splits plus what a model needs to know about them.

    ``name`` is canonical: ``load_task(task.name, seed=task.seed)`` loads the same
    tensors again. ``classes`` holds the original labels in id order (None for
    regression).
    """

    name: str
    train: Split
    val: Split
    test: Split
    input_spec: InputSpec
    metric: str
    classes: tuple[str, ...] | None
    seed: int
    val_given: bool = False  # the user's data brought its own validation split: use it as given, never re-split
    plateau_steps: int = 0  # optimiser steps a learner may take before its validation curve is judged
    scaling: Scaling | None = None  # the standardisation its continuous inputs got (None: none, or token ids)
    feature_names: tuple[str, ...] | None = None  # the features' names where the data named them (a CSV's columns)
    integer_labels: bool = False  # the class labels were integers (``classes`` holds them as text all the same)

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def to(self, device: torch.device | str) -> Task:
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))
