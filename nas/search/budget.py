"""How much training a candidate may get, scaled to the data: small sets need many passes to converge.

An 8-epoch ceiling is 16 optimiser steps on a 36-series set; here every
candidate may see at least ``min_examples`` training examples (so small sets
get more epochs) and at least :data:`FLOOR_EXAMPLES` in 8 to 24 passes (a
stock Transformer is usually given 30 epochs; at 8, the default digits run's
candidates stopped short of converging, while a set of 10,000 sequences
converges within 8), each epoch takes at least :data:`STEPS_PER_EPOCH` steps
(batches are capped at a share of the training set), and Hyperband's rungs
run from about 1/27 of the largest budget to all of it, or from the epoch by
which even the space's largest batch has taken the optimiser steps of the
task's plateau (recall forms suddenly: judged earlier, the models that solve
it look like failures). A task with fewer than ``cv_below``
non-test samples is scored by k-fold cross-validation.

The default ``min_examples`` is high because a set of tens of series keeps
gaining test accuracy for hundreds of epochs after it fits its training data
(FCN and InceptionTime train 1,500 to 2,000); at 25,000 a 1,076-sample set
such as digits still gets its 24 passes.

>>> plan = plan_budget(task, config, space.largest_batch())
>>> plan.epochs, plan.min_epochs, plan.folds
(893, 33, 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nas.data import Task
from nas.data.folds import check_folds
from nas.search.config import SearchConfig

FLOOR_EXAMPLES = 80_000  # every candidate may see about this many examples ...
FLOOR_EPOCHS = (8, 24)  # ... in at least 8 and at most 24 passes: a large set gets 8, one under 3,334 samples 24
MAX_EPOCHS = 1000  # the most: beyond it a set is too small for epochs to be the unit
STEPS_PER_EPOCH = 4  # batches are capped so that one epoch takes at least this many optimiser steps
RUNGS = 27  # Hyperband's smallest budget is the largest over this (reduction factor 3: four rungs)


@dataclass(frozen=True)
class Budget:
    """The training a trial may reach: ``epochs`` (Hyperband's max resource, and the span of each trial's
    learning-rate schedule), ``min_epochs`` (its min resource), the samples one epoch passes over, the largest
    batch, and the folds (0: one validation split)."""

    epochs: int
    min_epochs: int
    train_samples: int
    max_batch: int
    folds: int

    def batch(self, wanted: int) -> int:
        """The batch a trial trains at: ``wanted``, capped so that an epoch takes several steps."""
        return min(wanted, self.max_batch)

    def describe(self) -> str:
        scoring = f"{self.folds}-fold cross-validation" if self.folds else "one validation split"
        return (f"up to {self.epochs} epochs of {self.train_samples} samples (rungs from {self.min_epochs}), "
                f"batch at most {self.max_batch}, {scoring}")

    def to_dict(self) -> dict[str, int]:
        return {"epochs": self.epochs, "min_epochs": self.min_epochs, "train_samples": self.train_samples,
                "max_batch": self.max_batch, "folds": self.folds}


def uses_cv(task: Task, config: SearchConfig) -> bool:
    """Small data with no validation split of the user's own is scored by cross-validation."""
    return not task.val_given and len(task.train) + len(task.val) < config.cv_below


def plan_budget(task: Task, config: SearchConfig, largest_batch: int) -> Budget:
    """The budget of every trial of a search on ``task`` whose space draws batches up to ``largest_batch``;
    refuses a fold count the task cannot give."""
    folds = 0
    samples = len(task.train)
    if uses_cv(task, config):
        check_folds(task, config.folds)
        folds = config.folds
        pool = len(task.train) + len(task.val)
        samples = pool - math.ceil(pool / folds)  # the smallest training part of a fold
    if config.max_epochs is not None:
        epochs = config.max_epochs
    else:
        fewest, most = FLOOR_EPOCHS
        floor = min(most, max(fewest, math.ceil(FLOOR_EXAMPLES / samples)))
        epochs = min(MAX_EPOCHS, max(floor, math.ceil(config.min_examples / samples)))
    max_batch = max(1, samples // STEPS_PER_EPOCH)
    fewest_steps = math.ceil(samples / min(largest_batch, max_batch))  # an epoch at the largest batch
    first_rung = min(epochs, max(1, epochs // RUNGS, math.ceil(task.plateau_steps / fewest_steps)))
    return Budget(epochs, first_rung, samples, max_batch, folds)


__all__ = ["Budget", "FLOOR_EPOCHS", "FLOOR_EXAMPLES", "MAX_EPOCHS", "RUNGS", "STEPS_PER_EPOCH", "plan_budget", "uses_cv"]
