"""The straightforward search: Optuna's random sampler over a stock ``nn.TransformerEncoder``, no pruning.

What someone writes before reaching for a NAS tool: the size of the encoder
(``d_model``, ``heads``, ``layers``) and the learning rate are drawn at random,
each candidate trains in a plain ``DataLoader`` loop (AdamW, constant learning
rate, cross-entropy) for ``max_epochs`` and is scored by its best validation
accuracy. The ranges match this tool's default space (d_model 16-64, 1-4
layers, learning rate 5e-4 to 2e-2), the data are the same seeded splits
(``nas.data.load_task``), and every trial records ``best_val`` as the tool's
do, so the benchmark curves read both studies alike.

    python scripts/baselines/random_search.py --trials 20 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # transformer.py, beside this file
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # nas, for the data, without `pip install -e .`

from transformer import from_input_spec  # noqa: E402

from nas.data import load_task  # noqa: E402

D_MODELS = (16, 32, 64)
HEADS = (1, 2, 4, 8)  # all divide every d_model above
LAYERS = (1, 2, 3, 4)
LR = (5e-4, 2e-2)
BATCH_SIZE = 128
EVAL_BATCH = 1024


def loaders(task, seed: int) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled, seeded) and validation loaders over the task's tensors; the mask rides along if any."""

    def dataset(split) -> TensorDataset:
        return TensorDataset(*((split.x, split.y) if split.mask is None else (split.x, split.mask, split.y)))

    shuffle = torch.Generator().manual_seed(seed)
    return (DataLoader(dataset(task.train), batch_size=BATCH_SIZE, shuffle=True, generator=shuffle),
            DataLoader(dataset(task.val), batch_size=EVAL_BATCH))


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for *inputs, y in loader:
        logits = model(*(t.to(device) for t in inputs))
        correct += int((logits.argmax(-1) == y.to(device)).sum())
        total += len(y)
    model.train()
    return correct / total


def objective(task, max_epochs: int, seed: int, device: torch.device):
    """The function Optuna calls per trial: sample, build, train, and return the best validation accuracy."""

    def run(trial: optuna.Trial) -> float:
        d_model = trial.suggest_categorical("d_model", D_MODELS)
        heads = trial.suggest_categorical("heads", HEADS)
        layers = trial.suggest_categorical("layers", LAYERS)
        lr = trial.suggest_float("lr", *LR, log=True)
        trial_seed = int(np.random.SeedSequence([seed, trial.number]).generate_state(1)[0])
        torch.manual_seed(trial_seed)
        model = from_input_spec(task.input_spec, d_model=d_model, heads=heads, layers=layers).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        train, val = loaders(task, trial_seed)
        start, history = time.perf_counter(), []
        for _ in range(max_epochs):
            for *inputs, y in train:
                loss = nn.functional.cross_entropy(model(*(t.to(device) for t in inputs)), y.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            history.append(accuracy(model, val, device))
        best = max(history)
        for key, value in {"best_val": best, "val_history": history, "epochs": len(history),
                           "params": sum(p.numel() for p in model.parameters()),
                           "train_seconds": time.perf_counter() - start}.items():
            trial.set_user_attr(key, value)
        return best

    return run


def search(task: str = "digits", trials: int = 20, seed: int = 0, max_epochs: int = 8, timeout: float | None = None,
           device: str = "cpu", storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Run ``trials`` random trials (fewer if ``timeout`` seconds pass first; none starts after it) and return
    the study. ``storage`` None keeps it in memory; ``seed`` fixes the data split, sampler and training."""
    if trials < 1 or max_epochs < 1:
        raise ValueError(f"trials={trials} and max_epochs={max_epochs} must both be integers >= 1")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0")
    data = load_task(task, seed=seed)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=storage, study_name=study_name or f"random-search-{task}-seed{seed}",
                                direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=optuna.pruners.NopPruner())
    study.optimize(objective(data, max_epochs, seed, torch.device(device)), n_trials=trials, timeout=timeout)
    return study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Random search over nn.TransformerEncoder sizes and learning rate, "
                                                 "no pruning: the baseline of the speed benchmark.")
    parser.add_argument("--task", default="digits", help="task name, as for scripts/search.py (default: digits)")
    parser.add_argument("--trials", type=int, default=20, help="number of trials (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="data split, sampler and training seed (default: 0)")
    parser.add_argument("--max-epochs", type=int, default=8, help="epochs per trial (default: 8)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which no trial starts")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: in memory)")
    parser.add_argument("--study", default=None, help="study name (default: random-search-<task>-seed<seed>)")
    args = parser.parse_args(argv)
    try:
        study = search(args.task, args.trials, args.seed, args.max_epochs, args.timeout, args.device, args.storage,
                       args.study)
    except ValueError as err:
        parser.error(str(err))
    best = study.best_trial
    print(f"{len(study.trials)} trials; best validation accuracy {best.value:.4f} (trial {best.number}: {best.params})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
