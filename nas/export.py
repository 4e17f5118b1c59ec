"""Export one trial of a study as a folder that rebuilds with one call, and ``load_model`` that rebuilds it.

An export holds ``arch.json`` (the ArchSpec), ``model.safetensors`` (weights),
``metrics.json`` (metrics, cost, provenance and the InputSpec) and ``MODEL.md``.
Weights are the ones the search kept for the trial, or, with ``retrain_epochs``,
those of the spec retrained on train + validation with the trial's recipe.

>>> result = export_trial(study, out_dir="results/digits-default/best")
>>> model = load_model("results/digits-default/best")
>>> logits = model(x, mask)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from nas.artifacts import load_trial_weights, load_weights, save_weights
from nas.card import model_card
from nas.model import CompositeModel, build_model
from nas.spec import ArchSpec, InputSpec, SpecError
from nas.stored import display_url, objectives, pick_trial
from nas.tasks import Split, Task, load_task
from nas.train import TrainConfig, Trainer

ARCH_FILE, WEIGHTS_FILE, METRICS_FILE, CARD_FILE = "arch.json", "model.safetensors", "metrics.json", "MODEL.md"
EXPORT_FILES = (ARCH_FILE, WEIGHTS_FILE, METRICS_FILE, CARD_FILE)
LOAD_FILES = (ARCH_FILE, WEIGHTS_FILE, METRICS_FILE)


class ExportError(ValueError):
    """An export that cannot be written or loaded as asked; the message names the file, trial or tensor."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_trial` wrote: the folder, the trial, the metrics (as in metrics.json) and the model."""

    out_dir: Path
    trial: int
    metrics: dict[str, Any]
    model: CompositeModel


def export_trial(study: optuna.Study, out_dir: str | Path, *, trial: int | None = None,
                 results_dir: str | Path = "results", retrain_epochs: int | None = None, force: bool = False,
                 device: str = "auto", storage_url: str | None = None) -> ExportResult:
    """Export trial ``trial`` of ``study`` (default: the best; for several objectives the most accurate
    Pareto point) into ``out_dir``. Everything is checked and computed before a file is written, and
    a folder that already holds an export is refused unless ``force``.
    """
    if retrain_epochs is not None and (isinstance(retrain_epochs, bool) or retrain_epochs < 1):
        raise ExportError(f"retrain_epochs={retrain_epochs!r} must be an integer >= 1")
    frozen = pick_trial(study, trial)
    out = Path(out_dir)
    held = [name for name in EXPORT_FILES if (out / name).exists()]
    if held and not force:
        raise ExportError(f"{out} already holds an export ({', '.join(held)}); pass --force to replace it "
                          "or choose another --out")
    spec = _trial_spec(frozen)
    attrs = study.user_attrs
    if "task" not in attrs:
        raise ExportError(f"study {study.study_name!r} records no task; it was not made by attention-nas")
    task = load_task(attrs["task"], seed=attrs.get("seed", 0), cache_dir=Path(results_dir) / "cache")
    if retrain_epochs is None:
        trainer = Trainer(task, device)
        model = build_model(spec, task.input_spec)
        load_checked(model, load_trial_weights(results_dir, frozen), f"the weights file of trial {frozen.number}")
        model.to(trainer.device)
        val = trainer.evaluate(model, trainer.val)
        source = f"the weights trial {frozen.number} kept (its best validation epoch)"
    else:
        model, trainer = retrain(task, spec, frozen, retrain_epochs, device)
        val = None  # validation data was trained on
        source = f"retrained on train + validation for {retrain_epochs} epochs with trial {frozen.number}'s recipe"
    metrics = _metrics(study, frozen, task, trainer, val, trainer.evaluate(model, trainer.test), source, storage_url)
    model.to("cpu").eval()
    _write(out, spec, model, metrics)
    return ExportResult(out, frozen.number, metrics, model)


def _trial_spec(trial: optuna.trial.FrozenTrial) -> ArchSpec:
    if "arch" not in trial.user_attrs:
        raise ExportError(f"trial {trial.number} records no architecture (user attribute 'arch')")
    return ArchSpec.from_json(trial.user_attrs["arch"])


def retrain(task: Task, spec: ArchSpec, trial: optuna.trial.FrozenTrial, epochs: int,
            device: str = "auto") -> tuple[nn.Module, Trainer]:
    """Train ``spec`` afresh on train + validation for exactly ``epochs`` epochs with the trial's recipe
    (learning rate, batch, seed, ...); returns the final epoch's model and its trainer (test split intact)."""
    try:
        config = TrainConfig(**trial.user_attrs["train_config"])
    except (KeyError, TypeError) as err:
        raise ExportError(f"trial {trial.number} has no usable training recipe (user attribute 'train_config'): "
                          f"{err}") from None
    config = replace(config, max_epochs=epochs, time_limit=None)
    return fit_final(task, build_model(spec, task.input_spec, seed=config.seed), config, device,
                     f"retraining trial {trial.number}")


def fit_final(task: Task, model: nn.Module, config: TrainConfig, device: str = "auto",
              what: str = "retraining") -> tuple[nn.Module, Trainer]:
    """Train ``model`` on train + validation for ``config.max_epochs`` epochs and keep the last epoch's weights;
    returns it with its trainer (test split intact). Baselines retrain through this too, so both compare alike."""
    merged = merge_splits(task.train, task.val)
    trainer = Trainer(replace(task, train=merged, val=merged), device)
    final: dict[str, torch.Tensor] = {}

    def keep_final(epoch: int, value: float) -> bool:
        # The trainer keeps the best "validation" epoch; here validation is training data, so keep the last.
        if epoch == config.max_epochs:
            final.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return False

    result = trainer.fit(model, config, on_epoch=keep_final)
    if not final:
        raise ExportError(f"{what} stopped early: {result.stop_reason}")
    model.load_state_dict(final)
    return model, trainer


def merge_splits(a: Split, b: Split) -> Split:
    """One split holding ``a`` then ``b``; a missing mask or length means every step is real."""
    def full(split: Split, name: str) -> torch.Tensor:
        value = getattr(split, name)
        if value is not None:
            return value
        n, steps = split.x.shape[:2]
        return torch.ones(n, steps, dtype=torch.bool) if name == "mask" else torch.full((n,), steps)

    extra = {name: None if getattr(a, name) is None and getattr(b, name) is None
             else torch.cat([full(a, name), full(b, name)]) for name in ("mask", "lengths")}
    return Split(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), **extra)


def _metrics(study: optuna.Study, trial: optuna.trial.FrozenTrial, task: Task, trainer: Trainer, val: float | None,
             test: float, source: str, storage_url: str | None) -> dict[str, Any]:
    attrs = trial.user_attrs
    goal = objectives(study)
    return {
        "study": study.study_name, "storage": display_url(storage_url) if storage_url else None,
        "trial": trial.number, "task": task.name, "metric": task.metric,
        "val": val, "test": test, "trial_val": trial.values[goal.primary], "trial_test": attrs.get("test"),
        "objectives": dict(zip(goal.names, trial.values)), "weights": source,
        "params": attrs.get("params"), "flops": attrs.get("flops"), "latency_ms": attrs.get("latency_ms"),
        "device": attrs.get("device"), "export_device": str(trainer.device),
        "epochs": attrs.get("epochs"), "best_epoch": attrs.get("best_epoch"), "train_config": attrs.get("train_config"),
        "summary": attrs.get("summary"), "arch_hash": attrs.get("arch_hash"),
        "references": task.reference(), "input": task.input_spec.to_dict(), "versions": library_versions(),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("attention-nas", "torch", "optuna", "numpy", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _write(out: Path, spec: ArchSpec, model: nn.Module, metrics: dict[str, Any]) -> None:
    """All four files into a temporary folder beside ``out``, then moved in: no half-written export."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export."))
    try:
        (staging / ARCH_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
        save_weights(staging / WEIGHTS_FILE, model.state_dict(), {"arch": spec.to_json(), "trial": str(metrics["trial"])})
        (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / CARD_FILE).write_text(model_card(spec, InputSpec.from_dict(metrics["input"]), metrics))
        for name in EXPORT_FILES:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)``, first naming any tensor that is missing, extra or misshapen."""
    own = model.state_dict()
    for name, tensor in own.items():  # in the model's order, so the first problem named is the earliest layer's
        if name not in state:
            raise ExportError(f"{source} does not fit the architecture: tensor {name!r} is missing")
        if state[name].shape != tensor.shape:
            raise ExportError(f"{source} does not fit the architecture: tensor {name!r} has shape "
                              f"{tuple(state[name].shape)}, the architecture needs {tuple(tensor.shape)}")
    extra = [name for name in state if name not in own]
    if extra:
        raise ExportError(f"{source} does not fit the architecture: unexpected tensor {extra[0]!r}"
                          + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    model.load_state_dict(state, strict=True)


def load_model(path: str | Path) -> CompositeModel:
    """The exported model with its weights, on the CPU and in ``eval()`` mode.

    >>> model = load_model("results/digits-default/best")
    >>> logits = model(x, mask)   # x (B, T, features) or (B, T) token ids; mask (B, T) bool or None
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is not an export folder (it does not exist)")
    missing = [name for name in LOAD_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"{folder} is missing {', '.join(missing)}; an export holds {', '.join(EXPORT_FILES)}")
    try:
        spec = ArchSpec.from_json((folder / ARCH_FILE).read_text())
        info = json.loads((folder / METRICS_FILE).read_text())
        input_spec = InputSpec.from_dict(info["input"])
    except (SpecError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ExportError(f"{folder}: cannot rebuild the architecture from {ARCH_FILE} and {METRICS_FILE}: "
                          f"{err}") from None
    model = build_model(spec, input_spec)
    try:
        state = load_weights(folder / WEIGHTS_FILE)
    except ValueError as err:
        raise ExportError(str(err)) from None
    load_checked(model, state, str(folder / WEIGHTS_FILE))
    return model.eval()


__all__ = ["EXPORT_FILES", "ExportError", "ExportResult", "export_trial", "load_checked", "load_model", "merge_splits",
           "retrain"]
