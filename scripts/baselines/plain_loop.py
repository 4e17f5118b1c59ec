"""What the baseline searches share: the plain PyTorch training loop (``DataLoader``s over a task's tensors, one
epoch of optimiser steps on cross-entropy, accuracy), the Optuna study they run in, and their command line.

Nothing of ``nas`` beyond the task's tensors, so what the baselines measure is
stock PyTorch and stock Optuna as a user writes them, not this tool's trainer.
"""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EVAL_BATCH = 1024


def loader(split, batch_size: int = EVAL_BATCH, seed: int | None = None) -> DataLoader:
    """A loader over one split's tensors (the mask rides along if any); shuffled by a generator seeded with
    ``seed`` when one is given, in order otherwise."""
    tensors = (split.x, split.y) if split.mask is None else (split.x, split.mask, split.y)
    shuffle = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=seed is not None, generator=shuffle)


def trial_seed(seed: int, number: int) -> int:
    """The training seed of trial ``number`` in a search seeded ``seed``: distinct per trial, fixed per search."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def train_epoch(model: nn.Module, train: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    model.train()
    for *inputs, y in train:
        loss = nn.functional.cross_entropy(model(*(t.to(device) for t in inputs)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@torch.no_grad()
def accuracy(model: nn.Module, data: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for *inputs, y in data:
        logits = model(*(t.to(device) for t in inputs))
        correct += int((logits.argmax(-1) == y.to(device)).sum())
        total += len(y)
    model.train()
    return correct / total


def check_budget(trials: int, epochs: tuple[str, int], timeout: float | None) -> None:
    """Refuse fewer than one trial or epoch (``epochs`` is the parameter's name and value) or a timeout <= 0."""
    name, value = epochs
    if trials < 1 or value < 1:
        raise ValueError(f"trials={trials} and {name}={value} must both be integers >= 1")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0")


def optimize(objective: Callable[[optuna.Trial], float], sampler: optuna.samplers.BaseSampler, trials: int,
             timeout: float | None, storage: str | None, study_name: str) -> optuna.Study:
    """A new maximising study with no pruner, in ``storage`` (None: in memory), run for ``trials`` trials or until
    ``timeout`` seconds have passed (none starts after it; the one running ends)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", sampler=sampler,
                                pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=trials, timeout=timeout)
    return study


def search_from_command_line(search: Callable[..., optuna.Study], description: str, epochs_flag: str, epochs: int,
                             study: str, argv: list[str] | None) -> optuna.Study:
    """Parse the options every baseline script takes (``epochs_flag`` sets the epochs per trial, ``study`` is the
    default study name the help shows) and run ``search`` with them; a refused value exits as a usage error."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--task", default="digits", help="task name, as for scripts/search.py (default: digits)")
    parser.add_argument("--trials", type=int, default=20, help="number of trials (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="data split, sampler and training seed (default: 0)")
    parser.add_argument(epochs_flag, type=int, default=epochs, help=f"epochs per trial (default: {epochs})")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which no trial starts")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: in memory)")
    parser.add_argument("--study", default=None, help=f"study name (default: {study})")
    args = parser.parse_args(argv)
    epochs_per_trial = getattr(args, epochs_flag.removeprefix("--").replace("-", "_"))
    try:
        return search(args.task, args.trials, args.seed, epochs_per_trial, args.timeout, args.device, args.storage,
                      args.study)
    except ValueError as err:
        parser.error(str(err))
