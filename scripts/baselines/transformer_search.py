"""The peer: how people search today. Optuna's TPE over a stock ``nn.TransformerEncoder``, 30 epochs a trial,
a plain ``DataLoader`` loop, no pruning.

Each trial draws the encoder's width, heads, depth, feed-forward multiplier and
dropout with the learning rate and batch size, trains in a ``DataLoader`` loop
(AdamW, constant learning rate, cross-entropy) for ``epochs`` and keeps the
weights of its best validation epoch; their test accuracy is recorded beside
that validation accuracy. The sampler is ``TPESampler(seed=seed)`` as a user
writes it, with no pruner.

This is the peer's own recipe, not a copy of this tool's: it is not held to the
tool's epoch ceiling, search space or trial timeout. It shares only the data
(``nas.data.load_task``, the same seeded split) and the record: every trial
carries ``best_val`` and ``test`` as the tool's do, so the benchmark curves read
both studies alike.

    python scripts/baselines/transformer_search.py --trials 20 --seed 0
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

EPOCHS = 30
D_MODELS = (32, 64, 128)
HEADS = (2, 4, 8)  # all divide every d_model above
LAYERS = (1, 4)
FF_MULTS = (1, 2, 4)
DROPOUT = (0.0, 0.3)
LR = (1e-4, 1e-2)
BATCH_SIZES = (32, 64, 128)


def objective(task, epochs: int, seed: int, device: torch.device):
    """The function Optuna calls per trial: sample, build, train ``epochs``, keep the best validation epoch."""

    def run(trial: optuna.Trial) -> float:
        sizes = {"d_model": trial.suggest_categorical("d_model", D_MODELS),
                 "heads": trial.suggest_categorical("heads", HEADS),
                 "layers": trial.suggest_int("layers", *LAYERS),
                 "ff_mult": trial.suggest_categorical("ff_mult", FF_MULTS),
                 "dropout": trial.suggest_float("dropout", *DROPOUT)}
        lr = trial.suggest_float("lr", *LR, log=True)
        batch_size = trial.suggest_categorical("batch_size", BATCH_SIZES)
        seeded = trial_seed(seed, trial.number)
        torch.manual_seed(seeded)
        model = from_input_spec(task.input_spec, **sizes).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        train, val = loader(task.train, batch_size, seed=seeded), loader(task.val)
        start, history, best_state = time.perf_counter(), [], None
        for _ in range(epochs):
            train_epoch(model, train, optimizer, device)
            history.append(accuracy(model, val, device))
            if history[-1] > max(history[:-1], default=-1.0):  # the first best epoch wins ties
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best_state)
        best = max(history)
        for key, value in {"best_val": best, "test": accuracy(model, loader(task.test), device),
                           "best_epoch": history.index(best) + 1, "val_history": history, "epochs": len(history),
                           "params": sum(p.numel() for p in model.parameters()),
                           "train_seconds": time.perf_counter() - start}.items():
            trial.set_user_attr(key, value)
        return best

    return run


def search(task: str = "digits", trials: int = 20, seed: int = 0, epochs: int = EPOCHS, timeout: float | None = None,
           device: str = "cpu", storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Run ``trials`` TPE trials (fewer if ``timeout`` seconds pass first; none starts after it, the one running
    ends) and return the study. ``storage`` None keeps it in memory; ``seed`` fixes the split, sampler and training.

    >>> study = search("digits", trials=20, seed=0)
    >>> study.best_trial.user_attrs["test"]
    """
    check_budget(trials, ("epochs", epochs), timeout)
    data = load_task(task, seed=seed)
    return optimize(objective(data, epochs, seed, torch.device(device)), optuna.samplers.TPESampler(seed=seed), trials,
                    timeout, storage, study_name or f"transformer-search-{task}-seed{seed}")


def main(argv: list[str] | None = None) -> int:
    study = search_from_command_line(search, "Optuna TPE over a stock nn.TransformerEncoder, 30 epochs a trial, no "
                                             "pruning: the peer of the speed benchmark.", "--epochs", EPOCHS,
                                     "transformer-search-<task>-seed<seed>", argv)
    best = study.best_trial
    print(f"{len(study.trials)} trials; best validation accuracy {best.value:.4f}, its test accuracy "
          f"{best.user_attrs['test']:.4f} (trial {best.number}: {best.params})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
