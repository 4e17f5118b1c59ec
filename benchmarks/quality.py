"""Suite ``quality``: what a budgeted search hands back, against the peers a user would try instead.

For each UCR data set a search runs under a stated wall-time budget with the
tool's own defaults (budget scaled to the data, k-fold cross-validation on small
sets). Its final model is exported as a user gets it
(:func:`nas.results.export.export_trial`: top 3 rescored, the winner retrained on
train + validation with 3 seeds), and its test accuracy (mean over the seeds, and
of the seeds' ensemble, which the export holds) is set beside, in the same run and
on the same split:

- ``nn.TransformerEncoder`` of about the same size, trained with the winner's recipe
  and epochs on train + validation with the same seeds (and ensembled alike);
- aeon's MiniRocket, fitted on train + validation (:mod:`nas.results.baselines`);
- InceptionTime and HIVE-COTE 2 as published (means over 30 resamples, not this split).

On ``mqar`` the table gives the best composite's recall and whether the search
preferred softmax attention to linear attention.
"""

from __future__ import annotations

import functools
import io
import math
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from torch import nn  # noqa: E402

from nas.models.attention import get_attention  # noqa: E402
from benchmarks import load_baseline, register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from benchmarks.quality_draws import write_draws  # noqa: E402
from nas.training.device import resolve_device  # noqa: E402
from nas.models.saved import ExportError  # noqa: E402
from nas.results.baselines import minirocket_baseline  # noqa: E402
from nas.results.export import export_trial  # noqa: E402
from nas.results.final import fit_final  # noqa: E402
from nas.search.portfolio import PORTFOLIO_ATTR  # noqa: E402
from nas.models.measure import count_parameters  # noqa: E402
from nas.data.spec import InputSpec  # noqa: E402
from nas.models.spec import ArchSpec  # noqa: E402
from nas.results.study import pick_trial  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402
from nas.data.registry import references_for  # noqa: E402
from nas.search.record import recorded  # noqa: E402
from nas.data import Task, load_task  # noqa: E402
from nas.training.trainer import TrainConfig, Trainer  # noqa: E402
from nas.models.ensemble import SeedEnsemble, first_member  # noqa: E402

UCR_TASKS = tuple(f"ucr:{name}" for name in
                  ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf"))
MQAR = "mqar:pairs=4,n_train=10000"
"""Zoology's smallest setting (sequence 64, 4 key-value pairs) at a vocabulary of 64 and 10,000 training sequences
(Zoology: 8,192 and 100,000): enough optimiser steps within the search's scaled budget for recall to form, few
enough for a CPU; ``mqar`` names it here."""
TASKS = (*UCR_TASKS, MQAR)
QUICK_TASKS = ("ucr:ItalyPowerDemand",)
PUBLISHED = ("InceptionTime", "HIVE-COTE 2")
STUDY_FILE = "study.db"  # each task's study, beside its export
PARAM_TOLERANCE = 0.25  # the baseline's parameter count is within this share of the searched model's
BASELINE_HEADS = 4
BASELINE_FF_MULTS = (4, 2, 1)  # 4 is the stock Transformer's; smaller ones fill the gaps between widths
BASELINE_LAYERS = range(1, 7)
BASELINE_WIDTHS = range(BASELINE_HEADS, 1025, BASELINE_HEADS)
BASELINE_COLUMNS = ("baseline_params", "baseline_d_model", "baseline_layers", "baseline_ff_mult", "baseline_test_acc",
                    "baseline_test_std", "baseline_ensemble_test_acc")


@dataclass(frozen=True)
class Budget:
    """One search per task: no trial started after ``seconds`` of wall time (or ``trials`` trials), a trial's
    training stopped after a quarter of that; then the final model with ``top_k`` candidates and ``seeds`` seeds.
    ``max_epochs`` None: the search's own budget, scaled to the data."""

    trials: int
    seconds: float
    space: str
    max_epochs: int | None
    top_k: int = 3
    seeds: int = 3
    seed: int = 0

    def describe(self) -> str:
        epochs = "epochs scaled to the data" if self.max_epochs is None else f"max {self.max_epochs} epochs"
        return (f"{self.seconds / 60:g} min of search (or {self.trials} trials), space {self.space}, {epochs}, "
                f"at most {self.seconds / 4:g} s of training a trial, seed {self.seed}; final model: top {self.top_k} x "
                f"{self.seeds} seeds")


def budget_for(quick: bool, trials: int | None, minutes: float | None, seeds: int | None = None,
               seed: int | None = None) -> Budget:
    """Full: 10 minutes of search per task on ``search_spaces/timeseries.yaml`` with the search's own budget
    (mqar uses the default space), then the final model; quick: 2 trials on the tiny space, 2 epochs, 1 seed.
    ``seeds``: the final model's seeds, which the size-matched Transformer trains with too; more of them
    narrow the spread where test sets are small."""
    base = Budget(2, 60.0, "tiny", 2, top_k=1, seeds=1) if quick else Budget(100_000, 600.0, "timeseries", None)
    return replace(base, trials=trials or base.trials, seconds=60 * minutes if minutes else base.seconds,
                   seeds=seeds or base.seeds, seed=base.seed if seed is None else seed)


def chosen_tasks(tasks: tuple[str, ...] | None, quick: bool) -> tuple[str, ...]:
    """Task names as given (``ucr:GunPoint``, or ``GunPoint`` for short); each must be one of :data:`TASKS`."""
    if tasks is None:
        return QUICK_TASKS if quick else TASKS
    names = tuple(MQAR if name == "mqar" else name if name in TASKS or f"ucr:{name}" not in TASKS else f"ucr:{name}"
                  for name in tasks)
    for name in names:
        if name not in TASKS:
            raise ValueError(f"task {name!r} is not in the quality suite; allowed: {', '.join(TASKS)}")
    if not names:
        raise ValueError("tasks=() names no task; allowed: " + ", ".join(TASKS))
    return names


@register_suite("quality")
def quality_suite(out_dir: Path, device: str = "auto", quick: bool = False, trials: int | None = None,
                  minutes: float | None = None, tasks: tuple[str, ...] | None = None,
                  seeds: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """Search, export, baseline and references per task; writes quality.csv, quality.png and each export under
    ``out_dir/quality/<task>/``. ``seed`` seeds the searches (split, folds, sampler): one run is one draw of
    them, and a second seed shows how much a verdict rests on that draw; its files are ``quality_seed<S>.*``, so
    it keeps the seed-0 table beside it, and ``quality_draws.*`` sums up every draw there run with this budget
    (:mod:`benchmarks.quality_draws`)."""
    names = chosen_tasks(tasks, quick)
    budget = budget_for(quick, trials, minutes, seeds, seed)
    device = str(resolve_device(device))
    rows = []
    with tempfile.TemporaryDirectory(prefix="quality-") as work:  # study storage, kept weights, data cache
        for number, name in enumerate(names, start=1):
            say(f"quality {number}/{len(names)} {name}: {budget.seconds / 60:g} min of search, then the final model "
                "and its peers")
            rows.append(task_row(name, budget, Path(work), out_dir / "quality" / _slug(name), device))
            table = _write(rows, budget, device, out_dir)
    return table


def _write(rows: list[dict[str, Any]], budget: Budget, device: str, out_dir: Path) -> pd.DataFrame:
    """The table so far, after every task: a run of hours that stops at its last task keeps the others."""
    table = pd.DataFrame(rows).assign(budget=budget.describe(), device=device, machine=machine(device))
    stem = "quality" if budget.seed == 0 else f"quality_seed{budget.seed}"
    table.to_csv(out_dir / f"{stem}.csv", index=False)
    _plot(table, out_dir / f"{stem}.png")
    write_draws(out_dir, budget.describe())
    return table


def task_row(name: str, budget: Budget, work: Path, export_dir: Path, device: str) -> dict[str, Any]:
    """One task: search, export the final model, and run the same-size Transformer and MiniRocket beside it."""
    study, outcome, seconds, best = search(name, budget, work, device)
    keep_study(study.study_name, outcome.storage, export_dir / STUDY_FILE)
    start = time.perf_counter()
    exported = export_trial(study, export_dir, results_dir=work, top_k=budget.top_k, seeds=budget.seeds, force=True,
                            device=device)
    final = exported.metrics["final"]
    say(f"  final model: trial {exported.trial} ({final['picked_by']}), test {final['ensemble_test']:.4f} as the "
        f"ensemble, {final['test_mean']:.4f} ± {final['test_std']:.4f} a seed, in {time.perf_counter() - start:.0f} s")
    spec = ArchSpec.from_json(study.trials[exported.trial].user_attrs["arch"])
    task = load_task(name, seed=study.user_attrs.get("seed", 0), cache_dir=work / "cache")
    row = {"task": name, "space": study.user_attrs["space"], "seed": study.user_attrs["seed"],
           "trials_run": outcome.finished,
           "complete": _count(study, TrialState.COMPLETE), "search_s": seconds,
           "cross_validated": recorded(best, "cv") is not None,
           "best_trial": best.number, "winner_trial": exported.trial, "winner_summary": spec.summary(),
           "winner_is_portfolio": PORTFOLIO_ATTR in study.trials[exported.trial].user_attrs,
           "final_epochs": final["epochs"], "final_steps": final["steps"],
           "params": count_parameters(first_member(exported.model)),
           "search_test_acc": exported.metrics["trial_test"],  # the trial's own weights, before retraining
           "test_acc": final["test_mean"], "test_std": final["test_std"], "ensemble_test_acc": final["ensemble_test"]}
    row["final_s"] = time.perf_counter() - start
    row.update(baseline_row(task, spec, final, row["params"], device))
    row.update(minirocket_row(task, study.user_attrs.get("seed", 0), work / "cache", row["test_acc"]))
    say(f"  peers: same-size Transformer {row['baseline_ensemble_test_acc']:.4f} as the ensemble, MiniRocket "
        f"{row['minirocket_test_acc']:.4f}")
    row.update(reference_row(references_for(task.name), row["test_acc"]))
    row["attention_types"] = attention_types(spec)
    if task.name == "mqar":  # the softmax-vs-linear verdict is the mqar target; on other tasks it means nothing
        row.update(attention_row(study, spec))
        if row["test_acc"] < 2 * mqar_chance(task):
            row["note"] = "; ".join(filter(None, [row["note"], "recall near chance: too short a search to learn "
                                                               "mqar, so the softmax verdict says little"]))
    return row


def keep_study(name: str, storage: str, path: Path) -> None:
    """Copy study ``name`` from the suite's scratch storage to ``path`` (SQLite), replacing an earlier run's only
    once the copy is whole: the draw's trials stay for ``scripts/report.py``, and for judging another selection
    rule on them afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=f"sqlite:///{partial}")
    partial.replace(path)


def say(line: str) -> None:
    """A progress line on stderr, at once: each task takes its search budget and more, the table comes at the end."""
    print(line, file=sys.stderr, flush=True)


def minirocket_row(task: Task, seed: int, cache_dir: Path, test_acc: float) -> dict[str, Any]:
    """MiniRocket on the same split (NaN for tasks that are not UCR/UEA), and whether the export is within 3 points."""
    peer = minirocket_baseline(task, seed, cache_dir)
    acc = math.nan if peer is None else peer["test"]
    return {"minirocket_test_acc": acc, "minirocket_s": math.nan if peer is None else peer["seconds"],
            "within_3_of_minirocket": test_acc >= acc - 0.03, "beats_minirocket": test_acc > acc}


def mqar_chance(task: Task) -> float:
    """Recall of a model that has learned only which tokens are values (the upper half of the vocabulary)."""
    return 2 / task.input_spec.vocab


def search(name: str, budget: Budget, work: Path, device: str) -> tuple[optuna.Study, Any, float, FrozenTrial]:
    """Run the budgeted search and return the study, its outcome, its seconds and its best trial; training stops
    at a quarter of the wall budget, so the trial in hand when the budget runs out overruns it by that at most
    (plus its measuring and evaluation)."""
    space = "default" if budget.space == "timeseries" and not name.startswith("ucr:") else budget.space
    config = SearchConfig(trials=budget.trials, task=name, space=space, max_epochs=budget.max_epochs,
                          timeout=budget.seconds, trial_timeout=budget.seconds / 4, device=device, quiet=True,
                          seed=budget.seed, results_dir=str(work), study=f"quality-{_slug(name)}")
    start = time.perf_counter()
    outcome = run_search(config, out=io.StringIO())
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    best = pick_trial(study)
    say(f"  search: {outcome.finished} trials in {seconds:.0f} s; best trial {best.number} "
        f"({best.user_attrs.get('summary', '')}), validation {best.values[0]:.4f}")
    return study, outcome, seconds, best


def baseline_row(task: Task, spec: ArchSpec, final: dict[str, Any], params: int, device: str) -> dict[str, Any]:
    """The size-matched Transformer, trained like the final model (its recipe, epochs and seeds, on train +
    validation) but never augmented: a stock Transformer is trained on its data as given, and augmentation that
    suits the winner's convolutional stem can cost a model that reads fixed positions. NaN for per-token tasks:
    it predicts one label a sequence."""
    if task.input_spec.per_token:
        return dict.fromkeys(BASELINE_COLUMNS, math.nan)
    sizes = baseline_sizes(task.input_spec, params, depth=len(spec.blocks), patch=spec.patch)
    winner = next(c for c in final["candidates"] if c["trial"] == final["winner"])
    tests, models = [], []
    for seed in final["seeds"]:
        config = replace(TrainConfig(**final["recipe"]), max_epochs=final["epochs"], seed=seed, time_limit=None,
                         augment="none")
        model = _baseline(task.input_spec, sizes, spec.patch, spec.dropout, seed=seed)
        tests.append(retrain_final(task, model, config, device))
        models.append(model)
    trained = [m for m, test in zip(models, tests) if not math.isnan(test)]
    ensemble = Trainer(task, device).evaluate(SeedEnsemble(trained, classification=task.input_spec.target ==
                                                          "classification"), task.test) if trained else math.nan
    mean = float(np.mean(tests))
    values = (count_parameters(models[0]), sizes["d_model"], sizes["layers"], sizes["ff_mult"], mean,
              float(np.std(tests)), ensemble)
    return {**dict(zip(BASELINE_COLUMNS, values)), "winner_score": winner["score_mean"],
            "beats_transformer": final["test_mean"] > mean,
            "ensemble_beats_transformer_ensemble": final["ensemble_test"] > ensemble}


def baseline_sizes(input_spec: InputSpec, target: int, depth: int, patch: int) -> dict[str, int]:
    """``d_model``, ``layers`` and ``ff_mult`` of the baseline whose parameter count is closest to ``target``.

    Among sizes within :data:`PARAM_TOLERANCE` the layer count nearest ``depth`` wins, then the stock
    ``ff_mult=4``, then the closest count; with none within it, the closest count overall.
    """
    candidates = []
    for layers in BASELINE_LAYERS:
        for ff_mult in BASELINE_FF_MULTS:
            count = lambda d: _baseline_params(input_spec, d, layers, ff_mult, patch)  # noqa: E731
            width = _closest_width(count, target)
            miss = abs(math.log(count(width) / target))
            candidates.append((miss, layers, ff_mult, width))
    close = [c for c in candidates if c[0] <= math.log(1 + PARAM_TOLERANCE)]
    if close:
        _, layers, ff_mult, width = min(close, key=lambda c: (abs(c[1] - depth), c[2] != 4, c[0]))
    else:
        _, layers, ff_mult, width = min(candidates)
    return {"d_model": width, "layers": layers, "ff_mult": ff_mult}


def _closest_width(count: Callable[[int], int], target: int) -> int:
    """Bisection over :data:`BASELINE_WIDTHS`: the parameter count grows with the width."""
    low, high = 0, len(BASELINE_WIDTHS) - 1
    while low < high:
        mid = (low + high) // 2
        if count(BASELINE_WIDTHS[mid]) < target:
            low = mid + 1
        else:
            high = mid
    options = [BASELINE_WIDTHS[i] for i in (low - 1, low) if i >= 0]
    return min(options, key=lambda d: abs(math.log(count(d) / target)))


def _baseline_params(input_spec: InputSpec, d_model: int, layers: int, ff_mult: int, patch: int) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        model = _transformer().from_input_spec(
            input_spec, d_model=d_model, heads=BASELINE_HEADS, layers=layers, ff_mult=ff_mult, patch=patch)
    return count_parameters(model)


@functools.cache
def _transformer() -> ModuleType:
    return load_baseline("transformer")


def _baseline(input_spec: InputSpec, sizes: dict[str, int], patch: int, dropout: float, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # initial weights from the recipe's seed, as build_model does
        torch.manual_seed(seed)
        return _transformer().from_input_spec(input_spec, heads=BASELINE_HEADS, patch=patch, dropout=dropout, **sizes)


def retrain_final(task: Task, model: nn.Module, config: TrainConfig, device: str) -> float:
    """Test accuracy of ``model`` retrained as :func:`nas.results.export.retrain` retrains a searched spec; NaN if it
    diverged (the trainer stopped on a non-finite loss)."""
    try:
        model, trainer, _ = fit_final(task, model, config, device, "retraining the baseline")
    except ExportError:
        return math.nan
    return trainer.evaluate(model, trainer.test)


def reference_row(published: dict[str, float], test_acc: float) -> dict[str, Any]:
    """Published accuracies (NaN where aeon ships none, as for the multivariate sets) and the gap to the best."""
    row = {method: published.get(method, math.nan) for method in PUBLISHED}
    best = max(published.values(), default=math.nan)
    return {**row, "best_published": best, "gap_to_best_published": test_acc - best}


def is_softmax(spec: ArchSpec) -> bool:
    """Whether any block mixes with a softmax-normalised score (every family but ``linear``)."""
    return any(get_attention(b.type).scored for block in spec.blocks for b in block.mixer.branches)


def attention_types(spec: ArchSpec) -> str:
    return "+".join(sorted({b.type for block in spec.blocks for b in block.mixer.branches}))


def attention_row(study: optuna.Study, best: ArchSpec) -> dict[str, Any]:
    """The best trial's attention types, and the best validation value among all-linear and among softmax trials."""
    groups: dict[bool, list[float]] = {True: [], False: []}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        groups[is_softmax(ArchSpec.from_json(trial.user_attrs["arch"]))].append(trial.user_attrs["best_val"])
    softmax_val, linear_val = (max(groups[k], default=math.nan) for k in (True, False))
    notes = []
    if groups[True] and groups[False]:
        verdict = softmax_val > linear_val
    else:  # one side never completed: only the best trial's own types speak
        verdict = is_softmax(best)
        notes.append(f"no {'all-linear' if groups[True] else 'softmax'} trial completed: the best trial's types decide")
    if not verdict:
        notes.append("the search did NOT prefer softmax attention")
    return {"attention_types": attention_types(best), "softmax_trials": len(groups[True]),
            "linear_trials": len(groups[False]),
            "best_softmax_val": softmax_val, "best_linear_val": linear_val, "prefers_softmax": verdict,
            "note": "; ".join(notes)}


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def _slug(name: str) -> str:
    return name.replace(":", "-")


def _plot(table: pd.DataFrame, path: Path) -> None:
    bars = {"final model (mean of seeds)": ("test_acc", "test_std"),
            "final model (ensemble of the seeds, exported)": ("ensemble_test_acc", None),
            "Transformer, same size and recipe": ("baseline_test_acc", "baseline_test_std"),
            "Transformer (ensemble of the seeds)": ("baseline_ensemble_test_acc", None),
            "MiniRocket, same split": ("minirocket_test_acc", None),
            "InceptionTime (published)": ("InceptionTime", None), "HIVE-COTE 2 (published)": ("HIVE-COTE 2", None)}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.7 * len(table) + 3), 4.4))
    x, width = np.arange(len(table)), 0.8 / len(bars)
    for i, (label, (column, spread)) in enumerate(bars.items()):
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, table[column], width, label=label,  # NaN: no bar
               yerr=None if spread is None else table[spread], capsize=2)
    labels = [f"{t.removeprefix('ucr:')}\n{n} trials, {s:.0f} s" for t, n, s in
              zip(table["task"], table["trials_run"], table["search_s"])]
    ax.set_xticks(x, labels=labels, fontsize=8)
    ax.set(ylabel="test accuracy (mqar: recall)", ylim=(0, 1.05))
    first = table.iloc[0]
    ax.set_title(f"Searched models against references, {first['machine']}\nper task: {first['budget']}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the budget line is wider than the axes
    plt.close(fig)
