"""Suite ``quality``: what a budgeted search hands back, against published results and a plain Transformer.

For each UCR data set a search runs under a stated budget; its best trial is
exported with retraining on train + validation (:func:`nas.results.export.export_trial`)
and its test accuracy is set beside InceptionTime and HIVE-COTE 2 (the results
aeon ships) and beside ``nn.TransformerEncoder`` of about the same size, trained
with the best trial's recipe in the same retraining, so the comparison is like
with like. On ``mqar`` the table gives the best composite's recall and whether
the search preferred softmax attention to linear attention.
"""

from __future__ import annotations

import functools
import io
import math
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
from nas.training.device import resolve_device  # noqa: E402
from nas.models.saved import ExportError  # noqa: E402
from nas.results.export import export_trial, fit_final  # noqa: E402
from nas.models.measure import count_parameters  # noqa: E402
from nas.data.spec import InputSpec  # noqa: E402
from nas.models.spec import ArchSpec  # noqa: E402
from nas.results.study import pick_trial  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402
from nas.data.registry import references_for  # noqa: E402
from nas.search.record import recorded  # noqa: E402
from nas.data import Task, load_task  # noqa: E402
from nas.training.trainer import TrainConfig  # noqa: E402

UCR_TASKS = tuple(f"ucr:{name}" for name in
                  ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf"))
TASKS = (*UCR_TASKS, "mqar")
QUICK_TASKS = ("ucr:ItalyPowerDemand",)
PUBLISHED = ("InceptionTime", "HIVE-COTE 2")
PARAM_TOLERANCE = 0.25  # the baseline's parameter count is within this share of the searched model's
BASELINE_HEADS = 4
BASELINE_FF_MULTS = (4, 2, 1)  # 4 is the stock Transformer's; smaller ones fill the gaps between widths
BASELINE_LAYERS = range(1, 7)
BASELINE_WIDTHS = range(BASELINE_HEADS, 1025, BASELINE_HEADS)
BASELINE_COLUMNS = ("baseline_params", "baseline_d_model", "baseline_layers", "baseline_ff_mult", "baseline_test_acc")


@dataclass(frozen=True)
class Budget:
    """One search per task: at most ``trials`` trials, ``max_epochs`` each, and no trial started after
    ``seconds`` of wall time; a trial's training stops after a quarter of that."""

    trials: int
    seconds: float
    space: str
    max_epochs: int

    def describe(self) -> str:
        return (f"{self.trials} trials or {self.seconds:g} s, space {self.space}, max {self.max_epochs} epochs "
                f"or {self.seconds / 4:g} s of training a trial")


def budget_for(quick: bool, trials: int | None, minutes: float | None) -> Budget:
    """Full: 20 trials or 60 s per task on ``search_spaces/timeseries.yaml`` (about 12 minutes for the suite on
    2 CPU cores; mqar uses the default space); quick: 2 trials on the tiny space, 2 epochs.

    Up to 50 epochs, not the search's usual 8: the UCR training sets hold 30-270 series, so even with the
    time-series space's batches of 16-32 an epoch is a few optimiser steps. The per-trial training limit
    still bounds the larger sets (OSULeaf, mqar) to a few epochs.
    """
    base = Budget(2, 60.0, "tiny", 2) if quick else Budget(20, 60.0, "timeseries", 50)
    return replace(base, trials=trials or base.trials, seconds=60 * minutes if minutes else base.seconds)


def chosen_tasks(tasks: tuple[str, ...] | None, quick: bool) -> tuple[str, ...]:
    """Task names as given (``ucr:GunPoint``, or ``GunPoint`` for short); each must be one of :data:`TASKS`."""
    if tasks is None:
        return QUICK_TASKS if quick else TASKS
    names = tuple(name if name in TASKS or f"ucr:{name}" not in TASKS else f"ucr:{name}" for name in tasks)
    for name in names:
        if name not in TASKS:
            raise ValueError(f"task {name!r} is not in the quality suite; allowed: {', '.join(TASKS)}")
    if not names:
        raise ValueError("tasks=() names no task; allowed: " + ", ".join(TASKS))
    return names


@register_suite("quality")
def quality_suite(out_dir: Path, device: str = "auto", quick: bool = False, trials: int | None = None,
                  minutes: float | None = None, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Search, export, baseline and references per task; writes quality.csv, quality.png and each export under
    ``out_dir/quality/<task>/``."""
    names = chosen_tasks(tasks, quick)
    budget = budget_for(quick, trials, minutes)
    device = str(resolve_device(device))
    rows = []
    with tempfile.TemporaryDirectory(prefix="quality-") as work:  # study storage, kept weights, data cache
        for name in names:
            rows.append(task_row(name, budget, Path(work), out_dir / "quality" / _slug(name), device))
    table = pd.DataFrame(rows).assign(budget=budget.describe(), device=device, machine=machine(device))
    table.to_csv(out_dir / "quality.csv", index=False)
    _plot(table, out_dir / "quality.png")
    return table


def task_row(name: str, budget: Budget, work: Path, export_dir: Path, device: str) -> dict[str, Any]:
    """One task: search, export the best with retraining, and measure the baseline beside it."""
    study, outcome, seconds = search(name, budget, work, device)
    best = pick_trial(study)
    epochs = retrain_epochs(best)
    exported = export_trial(study, export_dir, trial=best.number, results_dir=work, retrain_epochs=epochs,
                            force=True, device=device)
    spec = ArchSpec.from_json(best.user_attrs["arch"])
    task = load_task(name, seed=study.user_attrs.get("seed", 0), cache_dir=work / "cache")
    row = {"task": name, "space": study.user_attrs["space"], "trials_run": outcome.finished, "complete": _count(study, TrialState.COMPLETE),
           "search_s": seconds, "best_trial": best.number, "best_summary": spec.summary(),
           "retrain_epochs": epochs, "params": count_parameters(exported.model),
           "search_test_acc": exported.metrics["trial_test"],  # the trial's own weights, before retraining
           "test_acc": exported.metrics["test"]}
    row.update(baseline_row(task, spec, best, row["params"], epochs, device))
    row.update(reference_row(references_for(task.name), row["test_acc"]))
    row.update(attention_row(study, spec))
    if task.name == "mqar" and row["test_acc"] < 2 * mqar_chance(task):
        row["note"] = "; ".join(filter(None, [row["note"], "recall near chance: too short a search to learn mqar, "
                                                           "so the softmax verdict says little"]))
    return row


def mqar_chance(task: Task) -> float:
    """Recall of a model that has learned only which tokens are values (the upper half of the vocabulary)."""
    return 2 / task.input_spec.vocab


def search(name: str, budget: Budget, work: Path, device: str) -> tuple[optuna.Study, Any, float]:
    """Run the budgeted search; training stops at a quarter of the wall budget, so the trial in hand when the
    budget runs out overruns it by that at most (plus its measuring and evaluation)."""
    space = "default" if budget.space == "timeseries" and not name.startswith("ucr:") else budget.space
    config = SearchConfig(trials=budget.trials, task=name, space=space, max_epochs=budget.max_epochs,
                          timeout=budget.seconds, trial_timeout=budget.seconds / 4, device=device, quiet=True,
                          results_dir=str(work), study=f"quality-{_slug(name)}")
    start = time.perf_counter()
    outcome = run_search(config, out=io.StringIO())
    seconds = time.perf_counter() - start
    return optuna.load_study(study_name=outcome.study_name, storage=outcome.storage), outcome, seconds


def retrain_epochs(best: FrozenTrial) -> int:
    """The epochs the trial's kept weights had trained: a time limit can stop a trial before ``max_epochs``,
    and retraining longer than the search ever trained that candidate would outspend the budget."""
    return int(recorded(best, "best_epoch") or recorded(best, "epochs"))


def baseline_row(task: Task, spec: ArchSpec, best: FrozenTrial, params: int, epochs: int,
                 device: str) -> dict[str, Any]:
    """The size-matched Transformer, retrained like the export; NaN for per-token tasks: it predicts one label a
    sequence."""
    if task.input_spec.per_token:
        return dict.fromkeys(BASELINE_COLUMNS, math.nan)
    sizes = baseline_sizes(task.input_spec, params, depth=len(spec.blocks), patch=spec.patch)
    config = replace(TrainConfig(**recorded(best, "train")), max_epochs=epochs, time_limit=None)
    model = _baseline(task.input_spec, sizes, spec.patch, spec.dropout, seed=config.seed)
    values = (count_parameters(model), sizes["d_model"], sizes["layers"], sizes["ff_mult"],
              retrain_final(task, model, config, device))
    return dict(zip(BASELINE_COLUMNS, values))


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
        model, trainer = fit_final(task, model, config, device, "retraining the baseline")
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
    types = sorted({b.type for block in best.blocks for b in block.mixer.branches})
    return {"attention_types": "+".join(types), "softmax_trials": len(groups[True]),
            "linear_trials": len(groups[False]),
            "best_softmax_val": softmax_val, "best_linear_val": linear_val, "prefers_softmax": verdict,
            "note": "; ".join(notes)}


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def _slug(name: str) -> str:
    return name.replace(":", "-")


def _plot(table: pd.DataFrame, path: Path) -> None:
    bars = {"searched best (retrained)": "test_acc", "Transformer, same size": "baseline_test_acc",
            "InceptionTime": "InceptionTime", "HIVE-COTE 2": "HIVE-COTE 2"}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(table) + 3), 4.4))
    x, width = np.arange(len(table)), 0.8 / len(bars)
    for i, (label, column) in enumerate(bars.items()):
        ax.bar(x + (i - 1.5) * width, table[column], width, label=label)  # NaN (none published): no bar
    labels = [f"{t.removeprefix('ucr:')}\n{n} trials, {s:.0f} s" for t, n, s in
              zip(table["task"], table["trials_run"], table["search_s"])]
    ax.set_xticks(x, labels=labels, fontsize=8)
    ax.set(ylabel="test accuracy (mqar: recall)", ylim=(0, 1.05))
    first = table.iloc[0]
    ax.set_title(f"Searched models against references, {first['machine']}\nper task: {first['budget']}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
