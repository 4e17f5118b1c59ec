"""The trainer: fits one model on one task, evaluating every epoch, and keeps the best epoch's weights.

It knows nothing of Optuna: after each epoch it calls ``on_epoch(epoch, value)``,
and a True answer (the pruner's verdict) stops the run. Data moves to the device
once, when the :class:`Trainer` is made; mini-batches are drawn by index.

>>> trainer = Trainer(load_task("digits"), device="auto")
>>> result = trainer.fit(build_model(spec, trainer.input_spec, seed=0), TrainConfig(max_epochs=10))
>>> result.best_metric, result.test_metric
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.training.augment import AUGMENTS, augment
from nas.training.device import resolve_device
from nas.data import IGNORE_INDEX, Split, Task

EVAL_BATCH = 1024
PACE_MARGIN = 0.9  # share of the time left that a fitted schedule plans to use: epochs vary in length


@dataclass(frozen=True)
class TrainConfig:
    """How to train one candidate. ``warmup`` is the share of all steps spent ramping the learning rate up."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    warmup: float = 0.05
    max_epochs: int = 20
    grad_clip: float = 1.0
    time_limit: float | None = None  # seconds of training; the best epoch so far stands when it runs out
    seed: int = 0
    augment: str = "none"  # train-time change of each batch of series (see nas.training.augment)

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0, "batch_size": self.batch_size >= 1,
            "warmup": 0 <= self.warmup < 1, "max_epochs": self.max_epochs >= 1, "grad_clip": self.grad_clip > 0,
            "time_limit": self.time_limit is None or self.time_limit > 0, "augment": self.augment in AUGMENTS,
        }
        for name, ok in checks.items():
            if not ok:
                allowed = f"; allowed: {', '.join(AUGMENTS)}" if name == "augment" else ""
                raise ValueError(f"TrainConfig {name}={getattr(self, name)!r} is out of range{allowed}")


@dataclass
class FitResult:
    """What one run produced. The metrics describe the best validation epoch's weights, ``best_state``."""

    metric: str
    val_history: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None  # 1-based
    best_metric: float | None = None
    test_metric: float | None = None
    best_state: dict[str, Tensor] | None = None
    stop_reason: str | None = None  # None: ran every epoch
    pruned: bool = False
    train_seconds: float = 0.0
    steps: int = 0  # optimiser steps taken (over every fold when cross-validated)
    fold_metrics: list[float] | None = None  # cross-validation: each fold's trailing mean at the best epoch
    fold_tests: list[float] | None = None  # cross-validation: each fold model's test value at that epoch
    fold_losses: list[float] | None = None  # cross-validation: each fold's validation loss at that epoch
    schedule_epochs: int | None = None  # epochs the learning-rate schedule spanned: fewer than asked when fitted
    retrain_epochs: int | None = None  # cross-validation: the final retrain's length (see ``fit_folds``)
    smoothing: int | None = None  # cross-validation: epochs in the trailing mean that chose the best epoch

    @property
    def val_std(self) -> float | None:
        """Spread of the folds at the best mean epoch (population std); None without cross-validation."""
        if not self.fold_metrics:
            return None
        mean = sum(self.fold_metrics) / len(self.fold_metrics)
        return math.sqrt(sum((v - mean) ** 2 for v in self.fold_metrics) / len(self.fold_metrics))

    @property
    def epochs(self) -> int:
        return len(self.val_history)


def maximize(metric: str) -> bool:
    """Whether larger is better for a task metric (``accuracy``) or smaller (``mse``)."""
    if metric not in ("accuracy", "mse"):
        raise ValueError(f"metric={metric!r} is unknown; allowed: accuracy, mse")
    return metric == "accuracy"


class Trainer:
    """Holds a task's tensors on one device and fits models to them."""

    def __init__(self, task: Task, device: str | torch.device = "auto"):
        self.device = resolve_device(str(device))
        self.metric = task.metric
        self.input_spec = task.input_spec
        self.larger_is_better = maximize(task.metric)
        self.train, self.val, self.test = (s.to(self.device) for s in (task.train, task.val, task.test))
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        _load_lazy_imports()

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA; nothing elsewhere."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.metric == "mse":
            return F.mse_loss(out.float().reshape(y.shape), y)
        return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))  # -100 labels are ignored

    def batches(self, split: Split, order: Tensor | None, size: int) -> Iterator[tuple[Tensor, Tensor | None, Tensor]]:
        """(x, mask, y) for consecutive chunks of ``order``, an index tensor on the device; with no ``order``,
        slices in place (views: evaluation copies nothing)."""
        for start in range(0, len(split) if order is None else len(order), size):
            idx = slice(start, start + size) if order is None else order[start:start + size]
            yield split.x[idx], None if split.mask is None else split.mask[idx], split.y[idx]

    def improves(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.larger_is_better else value < best)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split) -> float:
        """Accuracy over labelled targets, or mean squared error, of ``model`` on ``split``."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for out, y in self._outputs(model, split):
            if self.metric == "mse":
                total += (out.reshape(y.shape) - y).square().sum()
                count += y.numel()
            elif y.ndim == 1:  # one label per sample: every one is real
                total += (out.argmax(-1) == y).sum()
                count += len(y)
            else:
                labelled = y != IGNORE_INDEX
                total += (out.argmax(-1) == y)[labelled].sum()
                count += int(labelled.sum())
        return float(total) / max(count, 1)

    @torch.no_grad()
    def mean_loss(self, model: nn.Module, split: Split) -> float:
        """The training loss (cross-entropy, or squared error) over ``split``'s labelled targets: a finer score than
        accuracy, which models that classify every sample alike tie on."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for out, y in self._outputs(model, split):
            labelled = y.numel() if self.metric == "mse" else int((y != IGNORE_INDEX).sum())
            if labelled:  # a batch with no labelled target has no mean loss
                total += self.loss(out, y).double() * labelled
                count += labelled
        return float(total) / max(count, 1)

    def _outputs(self, model: nn.Module, split: Split) -> Iterator[tuple[Tensor, Tensor]]:
        """(float32 outputs, targets) of ``model`` in eval mode over ``split``, batch by batch."""
        was_training = model.training
        model.eval()
        try:
            with self.autocast():
                for x, mask, y in self.batches(split, None, EVAL_BATCH):
                    yield model(x, mask).float(), y
        finally:
            model.train(was_training)

    def fit(self, model: nn.Module, config: TrainConfig,
            on_epoch: Callable[[int, float], bool] | None = None,
            on_checkpoint: Callable[[dict], None] | None = None, resume: dict | None = None) -> FitResult:
        """Train ``model`` in place; after each epoch ``on_epoch(epoch, val_metric)`` may answer True to stop.

        Stops early on a non-finite loss or metric (as pruned, with the reason),
        on ``config.time_limit`` (keeping the best epoch so far) or when
        ``on_epoch`` says so. The best epoch's weights are loaded back into
        ``model`` and measured once on the test split. When the time limit would
        cut the schedule short, it is fitted to the epochs that fit (see
        :func:`fit_schedule`). After every epoch that does
        not stop the run, ``on_checkpoint(state)`` receives everything needed to
        go on; ``fit(..., resume=state)`` goes on from it as if never stopped.
        """
        torch.manual_seed(config.seed)  # dropout draws from the global generator
        run = Session(self, model, config)
        result = FitResult(self.metric)
        first = 1 if resume is None else run.restore(resume, result)
        start = time.perf_counter()
        deadline = None if config.time_limit is None else start + config.time_limit
        epoch = first
        while epoch <= run.epochs:
            epoch_start = time.perf_counter()
            loss, timed_out = run.train_epoch(deadline)
            if timed_out:
                result.stop_reason = f"time limit of {config.time_limit:g}s reached in epoch {epoch}"
            value = self.evaluate(model, self.val)
            result.epoch_seconds.append(time.perf_counter() - epoch_start)
            if not (math.isfinite(loss) and math.isfinite(value)):
                result.stop_reason, result.pruned = f"non-finite loss or {self.metric} in epoch {epoch}", True
                break
            result.val_history.append(value)
            if self.improves(value, result.best_metric):
                result.best_metric, result.best_epoch = value, epoch
                result.best_state = snapshot(model)
            if on_epoch is not None and on_epoch(epoch, value):
                result.stop_reason, result.pruned = f"pruned after epoch {epoch}", True
                break
            if result.stop_reason is not None:
                break
            fit_schedule([run], result.epoch_seconds, deadline)
            if on_checkpoint is not None and epoch < run.epochs:
                on_checkpoint(run.checkpoint(epoch, result))
            epoch += 1
        note_fitted_schedule(result, run, config)
        result.train_seconds = time.perf_counter() - start
        result.steps = run.steps
        if result.best_state is not None:
            model.load_state_dict(result.best_state)
            result.test_metric = self.evaluate(model, self.test)
        return result


class Session:
    """One model in training: its optimiser, learning-rate schedule and shuffling, an epoch at a time, so that
    several models (the folds of a cross-validation) can train in step and be judged on their mean curve.

    The schedule spans ``config.max_epochs`` epochs of this trainer's train split, the budget the run may reach,
    unless :meth:`shorten` fits it to fewer.
    """

    def __init__(self, trainer: Trainer, model: nn.Module, config: TrainConfig):
        spec = trainer.input_spec
        if config.augment != "none" and (spec.target != "classification" or spec.per_token):
            raise ValueError(f"augment={config.augment!r} keeps a series' class, not a regression target or "
                             f"per-token labels; this task's target is {spec.target}: use augment='none'")
        self.trainer, self.model, self.config = trainer, model, config
        self.shuffle = torch.Generator().manual_seed(config.seed)
        model.to(trainer.device).train()
        self.optimizer = make_optimizer(model, config, trainer.device)
        self.steps_per_epoch = math.ceil(len(trainer.train) / config.batch_size)
        self.factor = WarmupCosine(config.max_epochs * self.steps_per_epoch, config.warmup)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.factor)  # its state carries the span
        self.steps = 0

    @property
    def epochs(self) -> int:
        """The epochs the schedule spans: the run ends with the last of them."""
        return self.factor.steps // self.steps_per_epoch

    def shorten(self, epochs: int) -> None:
        """Make the schedule end (learning rate 0) after ``epochs`` epochs instead."""
        self.factor.shorten(epochs * self.steps_per_epoch)

    def train_epoch(self, deadline: float | None = None) -> tuple[float, bool]:
        """One pass over the train split in a fresh order; returns the summed loss and whether ``deadline``
        (a ``time.perf_counter()`` value) passed, which ends the epoch early."""
        trainer, model, config = self.trainer, self.model, self.config
        model.train()
        order = torch.randperm(len(trainer.train), generator=self.shuffle).to(trainer.device)
        loss_sum = torch.zeros((), device=trainer.device)
        for x, mask, y in trainer.batches(trainer.train, order, config.batch_size):
            x = augment(config.augment, x, mask, self.shuffle)
            with trainer.autocast():
                loss = trainer.loss(model(x, mask), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.schedule.step()
            self.steps += 1
            loss_sum += loss.detach()
            if deadline is not None and time.perf_counter() > deadline:
                return float(loss_sum), True
        return float(loss_sum), False

    def checkpoint(self, epoch: int, result: FitResult) -> dict:
        """Everything needed to go on after ``epoch`` as if never stopped."""
        return {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(), "rng": torch.get_rng_state(),
                "device_rng": _device_rng(self.trainer.device), "shuffle": self.shuffle.get_state(),
                "val_history": result.val_history, "epoch_seconds": result.epoch_seconds,
                "best_epoch": result.best_epoch, "best_metric": result.best_metric,
                "best_state": result.best_state, "steps": self.steps}

    def restore(self, state: dict, result: FitResult) -> int:
        """Load a checkpoint's states into the run; returns the epoch to go on with."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        saved = state.get("device_rng")  # absent from checkpoints of older versions
        device = self.trainer.device
        if device.type == "cuda" and saved is not None and saved.numel():
            torch.cuda.set_rng_state(saved, device)
        self.shuffle.set_state(state["shuffle"])
        result.val_history, result.epoch_seconds = list(state["val_history"]), list(state["epoch_seconds"])
        result.best_epoch, result.best_metric, result.best_state = state["best_epoch"], state["best_metric"], state["best_state"]
        self.steps = int(state.get("steps", int(state["epoch"]) * self.steps_per_epoch))
        return int(state["epoch"]) + 1


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the weights that later steps leave alone."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _load_lazy_imports() -> None:
    """Make torch import its compiler now: it does so on the first optimiser or dispatch mode (the FLOP counter)
    a process makes, which would otherwise land inside a worker's first trial and skew its time."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW that decays matrices only: decaying biases, norms and gains only fights the data.

    The fused kernel (CPU and CUDA) is several times faster than the per-tensor
    default for the many small tensors of these models.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cpu", "cuda") or None
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, fused=fused)


def _device_rng(device: torch.device) -> torch.Tensor:
    """The CUDA generator's state (dropout on a GPU draws from it); empty on the CPU, whose generator is saved apart."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8)


class WarmupCosine:
    """Learning-rate factor: linear from ~0 to 1 over the warm-up, then cosine down to 0 at the last step.

    An object, not a closure: the scheduler saves its attributes with its state, so a checkpoint keeps a
    shortened span.
    """

    def __init__(self, steps: int, warmup: float):
        self.steps = steps
        self.warm = max(1, round(steps * warmup)) if warmup > 0 else 0

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / self.warm
        progress = (step - self.warm) / max(1, self.steps - self.warm)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def shorten(self, steps: int) -> None:
        """End at ``steps`` instead; a warm-up longer than half of them is cut to half."""
        self.steps = min(self.steps, steps)
        self.warm = min(self.warm, self.steps // 2)


def fit_schedule(runs: list[Session], epoch_seconds: list[float], deadline: float | None) -> None:
    """Shorten the runs' schedule (they train in step) when, at the pace of the epochs so far, it would not end by
    ``deadline``, a ``time.perf_counter()`` value.

    A run that its time limit cuts mid-schedule is judged at a high learning rate, before the decay that its
    best epochs come from; fitted, it ends decayed within the limit. The first epoch, slowed by one-off work,
    is left out of the pace, so nothing is decided before the second. Only ever shortens: a span that moved
    back and forth would raise the learning rate again.
    """
    if deadline is None or not runs or len(epoch_seconds) < 2:
        return
    pace = sum(epoch_seconds[1:]) / (len(epoch_seconds) - 1)
    done = len(epoch_seconds)
    left = deadline - time.perf_counter()
    fits = done + (int(PACE_MARGIN * left / pace) if pace > 0 else runs[0].epochs)
    epochs = max(done + 1, fits)
    if epochs < runs[0].epochs:
        for run in runs:
            run.shorten(epochs)


def note_fitted_schedule(result: FitResult, run: Session, config: TrainConfig) -> None:
    """Record the span the schedule had, and why, when the time limit made it shorter than asked."""
    result.schedule_epochs = run.epochs
    if run.epochs < config.max_epochs and result.stop_reason is None:
        result.stop_reason = (f"schedule fitted to {run.epochs} of {config.max_epochs} epochs by the time limit "
                              f"of {config.time_limit:g}s")


__all__ = ["FitResult", "Session", "TrainConfig", "Trainer", "WarmupCosine", "fit_schedule", "make_optimizer",
           "maximize", "note_fitted_schedule", "snapshot"]
