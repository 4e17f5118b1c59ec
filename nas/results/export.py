"""Export a study's final model as a folder that rebuilds with one call (``load_model``).

An export holds ``arch.json`` (the ArchSpec), ``model.safetensors`` (weights),
``metrics.json`` (metrics, cost, provenance and the InputSpec) and ``MODEL.md``.
By default the weights are the final model's (:mod:`nas.results.final`: the top
candidates rescored, the winner retrained on train + validation per seed, test
mean and spread over the seeds), all seeds' as one ensemble (``members`` in
``metrics.json``) or the first seed's alone; else the ones the search kept for a
trial, or that trial retrained once for a given number of epochs.

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
from typing import Any, Callable

import optuna
from torch import nn

from nas.data.registry import references_for
from nas.data import Task, load_task
from nas.data.folds import merge_splits
from nas.data.spec import InputSpec
from nas.models.ensemble import SeedEnsemble
from nas.models.model import CompositeModel, build_model
from nas.models.saved import ARCH_FILE, CARD_FILE, EXPORT_FILES, METRICS_FILE, WEIGHTS_FILE, ExportError, load_checked
from nas.models.spec import ArchSpec
from nas.models.weights import save_weights
from nas.results.card import model_card
from nas.results.final import SEEDS, TOP_K, final_model, fit_final, trial_recipe
from nas.results.study import objectives, pick_trial
from nas.search.record import ARCH, TEST, recorded
from nas.search.storage import display_url
from nas.search.kept_weights import load_trial_weights
from nas.training.trainer import Trainer

@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_trial` wrote: the folder, the trial, the metrics (as in metrics.json) and the model."""

    out_dir: Path
    trial: int
    metrics: dict[str, Any]
    model: CompositeModel | SeedEnsemble


def export_trial(study: optuna.Study, out_dir: str | Path, *, trial: int | None = None,
                 results_dir: str | Path = "results", final: bool = True, top_k: int = TOP_K, seeds: int = SEEDS,
                 retrain_epochs: int | None = None, ensemble: bool = True, force: bool = False, device: str = "auto",
                 storage_url: str | None = None, progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export the final model of ``study`` into ``out_dir``.

    By default (``final``) the top ``top_k`` candidates (only ``trial`` when given) are rescored and the winner
    retrained on train + validation with ``seeds`` seeds (:func:`nas.results.final.final_model`), exported as the
    seeds' ensemble (``ensemble=False``: the first seed's network alone); with
    ``final=False`` the weights the search kept for the trial (default: the best; for several objectives the
    most accurate Pareto point); with ``retrain_epochs`` that trial retrained once for exactly that many epochs.
    Everything is computed before a file is written, and a folder that already holds an export is refused
    unless ``force``.
    """
    if retrain_epochs is not None and (isinstance(retrain_epochs, bool) or retrain_epochs < 1):
        raise ExportError(f"retrain_epochs={retrain_epochs!r} must be an integer >= 1")
    out = Path(out_dir)
    held = [name for name in EXPORT_FILES if (out / name).exists()]
    if held and not force:
        raise ExportError(f"{out} already holds an export ({', '.join(held)}); pass --force to replace it "
                          "or choose another --out")
    attrs = study.user_attrs
    if "task" not in attrs:
        raise ExportError(f"study {study.study_name!r} records no task; it was not made by attention-nas")
    task = load_task(attrs["task"], seed=attrs.get("seed", 0), cache_dir=Path(results_dir) / "cache")
    extra: dict[str, Any] = {}
    if retrain_epochs is None and final:
        done = final_model(study, task, top_k=top_k, seeds=seeds, trial=trial, device=device, progress=progress)
        frozen, trainer, val = done.winner.trial, done.trainer, None
        members = len(done.models) if ensemble else 1
        model = done.ensemble if members > 1 else done.models[0]
        test = done.ensemble_test if members > 1 else done.test_per_seed[0]
        extra = {"final": done.to_dict(), "test_std": done.test_std, "members": members}
        weights = (f"the ensemble of all {members} seeds (their mean class probabilities)" if members > 1 else
                   "the first seed's weights")
        source = (f"the final model: trial {frozen.number}, picked by {done.picked_by}, "
                  f"retrained on train + validation for {done.config.max_epochs} "
                  f"epochs with {len(done.seeds)} seeds; these are {weights}")
    else:
        frozen = pick_trial(study, trial)
        spec = _trial_spec(frozen)
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
        test = trainer.evaluate(model, trainer.test)
    metrics = {**_metrics(study, frozen, task, trainer, val, test, source, storage_url), **extra}
    model.to("cpu").eval()
    _write(out, _trial_spec(frozen), model, metrics)
    return ExportResult(out, frozen.number, metrics, model)


def _trial_spec(trial: optuna.trial.FrozenTrial) -> ArchSpec:
    if ARCH not in trial.user_attrs:
        raise ExportError(f"trial {trial.number} records no architecture (user attribute 'arch')")
    return ArchSpec.from_json(trial.user_attrs[ARCH])


def retrain(task: Task, spec: ArchSpec, trial: optuna.trial.FrozenTrial, epochs: int,
            device: str = "auto") -> tuple[nn.Module, Trainer]:
    """Train ``spec`` afresh on train + validation for exactly ``epochs`` epochs with the trial's recipe
    (learning rate, batch, seed, ...); returns the final epoch's model and its trainer (test split intact)."""
    config = replace(trial_recipe(trial), max_epochs=epochs)
    model, trainer, _ = fit_final(task, build_model(spec, task.input_spec, seed=config.seed), config, device,
                                  f"retraining trial {trial.number}")
    return model, trainer


def _metrics(study: optuna.Study, trial: optuna.trial.FrozenTrial, task: Task, trainer: Trainer, val: float | None,
             test: float, source: str, storage_url: str | None) -> dict[str, Any]:
    attrs = trial.user_attrs
    goal = objectives(study)
    return {
        "study": study.study_name, "storage": display_url(storage_url) if storage_url else None,
        "trial": trial.number, "task": task.name, "metric": task.metric,
        "val": val, "test": test, "trial_val": trial.values[goal.primary], "trial_test": attrs.get(TEST),
        "objectives": dict(zip(goal.names, trial.values)), "weights": source,
        "params": attrs.get("params"), "flops": attrs.get("flops"), "latency_ms": attrs.get("latency_ms"),
        "device": recorded(trial, "device"), "export_device": str(trainer.device),
        "epochs": recorded(trial, "epochs"), "best_epoch": recorded(trial, "best_epoch"),
        "train_config": recorded(trial, "train"), "summary": attrs.get("summary"),
        "arch_hash": ArchSpec.from_json(attrs[ARCH]).hash() if ARCH in attrs else None,
        "references": references_for(task.name), "input": task.input_spec.to_dict(),
        "preprocessing": preprocessing(task), "versions": library_versions(),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def preprocessing(task: Task) -> dict[str, Any]:
    """What raw data needs before the model sees it, and what its class ids mean: :func:`load_predictor` applies
    it, so new data goes in as the user holds it."""
    classes = None if task.classes is None else [int(c) if task.integer_labels else c for c in task.classes]
    return {"scaling": task.scaling.to_dict() if task.scaling is not None else None,
            "classes": classes,  # as the data had them: integer labels come back as integers
            "features": list(task.feature_names) if task.feature_names is not None else None}


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


__all__ = ["ExportResult", "export_trial", "retrain"]
