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

import sys
import time
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # transformer.py and plain_loop.py, beside this file
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # nas, for the data, without `pip install -e .`

from plain_loop import (accuracy, check_budget, loader, optimize, search_from_command_line,  # noqa: E402
                        train_epoch, trial_seed)
from transformer import from_input_spec  # noqa: E402

from nas.data import load_task  # noqa: E402

D_MODELS = (16, 32, 64)
HEADS = (1, 2, 4, 8)  # all divide every d_model above
LAYERS = (1, 2, 3, 4)
LR = (5e-4, 2e-2)
BATCH_SIZE = 128


def objective(task, max_epochs: int, seed: int, device: torch.device):
    """The function Optuna calls per trial: sample, build, train, and return the best validation accuracy."""

    def run(trial: optuna.Trial) -> float:
        d_model = trial.suggest_categorical("d_model", D_MODELS)
        heads = trial.suggest_categorical("heads", HEADS)
        layers = trial.suggest_categorical("layers", LAYERS)
        lr = trial.suggest_float("lr", *LR, log=True)
        seeded = trial_seed(seed, trial.number)
        torch.manual_seed(seeded)
        model = from_input_spec(task.input_spec, d_model=d_model, heads=heads, layers=layers).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        train, val = loader(task.train, BATCH_SIZE, seed=seeded), loader(task.val)
        start, history = time.perf_counter(), []
        for _ in range(max_epochs):
            train_epoch(model, train, optimizer, device)
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
    check_budget(trials, ("max_epochs", max_epochs), timeout)
    data = load_task(task, seed=seed)
    return optimize(objective(data, max_epochs, seed, torch.device(device)), optuna.samplers.RandomSampler(seed=seed),
                    trials, timeout, storage, study_name or f"random-search-{task}-seed{seed}")


def main(argv: list[str] | None = None) -> int:
    study = search_from_command_line(search, "Random search over nn.TransformerEncoder sizes and learning rate, no "
                                             "pruning: a baseline for the benchmarks.", "--max-epochs", 8,
                                     "random-search-<task>-seed<seed>", argv)
    best = study.best_trial
    print(f"{len(study.trials)} trials; best validation accuracy {best.value:.4f} (trial {best.number}: {best.params})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
