"""Suite ``speed``: wall time until the best validation accuracy on digits reaches a target, this tool against
the straightforward search.

The tool runs with its defaults (default space, TPE, Hyperband, 8 epochs); the
baseline (``scripts/baselines/random_search.py``) is Optuna's random sampler
over a stock ``nn.TransformerEncoder`` with a plain ``DataLoader`` loop and no
pruning. Both get the same seeded data split, epoch ceiling, device, torch
threads (one process runs both) and wall-time budget per run; runs alternate
(tool seed 0, baseline seed 0, tool seed 1, ...) so drifting machine load hits
both alike. A run that does not reach the target counts the budget as its time,
a lower bound, and the table says which ratios are bounds.
"""

from __future__ import annotations

import io
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks import load_baseline, register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from benchmarks.curves import (Reached, best_so_far, final_best, time_to_target, trial_frame, warm_up,  # noqa: E402
                                   write_outputs)
from nas.training.device import resolve_device  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402

TASK = "digits"
# 0.98 is out of reach: the tool's default 200-trial run (many minutes) ended at 0.978. In 2 minutes on a shared
# 2-core CPU (one torch thread) the tool's seed-0 run ended at 0.964, reaching 0.96 after 68 s and never 0.97, and
# the baseline ended at 0.931. 0.96 is reachable in the budget, so the time to it measures search speed.
TARGET = 0.96
QUICK_TARGET = 0.5  # a quick run has seconds and 2 epochs per trial; this only checks the machinery
MINUTES, QUICK_MINUTES = 2.0, 0.05
SEEDS = 3
MAX_EPOCHS, QUICK_EPOCHS = 8, 2
TRIAL_CAP = 100_000  # runs end on their time budget, never on this
METHODS = ("tool", "baseline")


def run_tool(seed: int, budget_s: float, max_epochs: int, device: str, folder: Path) -> pd.DataFrame:
    """This tool with its defaults for ``budget_s`` seconds; its trials as a best-so-far frame."""
    start = datetime.now()
    outcome = run_search(SearchConfig(trials=TRIAL_CAP, task=TASK, max_epochs=max_epochs, timeout=budget_s, seed=seed,
                                      device=device, quiet=True, results_dir=str(folder), study=f"tool-seed{seed}"),
                         out=io.StringIO())
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    return best_so_far(trial_frame(study.get_trials(), start))


def run_baseline(seed: int, budget_s: float, max_epochs: int, device: str, folder: Path) -> pd.DataFrame:
    """The random-search baseline for ``budget_s`` seconds, stored in SQLite as the tool's study is."""
    baseline = load_baseline("random_search")
    start = datetime.now()
    study = baseline.search(TASK, trials=TRIAL_CAP, seed=seed, max_epochs=max_epochs, timeout=budget_s, device=device,
                            storage=f"sqlite:///{folder / f'baseline-seed{seed}.db'}")
    return best_so_far(trial_frame(study.get_trials(), start))


def compare(tool: Reached, baseline: Reached, budget_s: float) -> dict:
    """One seed's row: each time to target (the budget where not reached) and their ratio, with what it is."""
    tool_s = budget_s if tool.seconds is None else tool.seconds
    baseline_s = budget_s if baseline.seconds is None else baseline.seconds
    kind = {(True, True): "exact", (True, False): "lower bound: baseline not reached",
            (False, True): "upper bound: tool not reached", (False, False): "unknown: neither reached"}
    reached = (tool.seconds is not None, baseline.seconds is not None)
    return {"tool_s": tool_s, "tool_trials": tool.trials, "tool_reached": reached[0],
            "baseline_s": baseline_s, "baseline_trials": baseline.trials, "baseline_reached": reached[1],
            "speedup": baseline_s / tool_s if any(reached) else float("nan"), "speedup_is": kind[reached]}


def summarise(rows: list[dict]) -> dict:
    """The row over all seeds: median times and ratio, with the ratio's min and max as its spread."""
    ratios = pd.Series([r["speedup"] for r in rows])  # NaN (neither reached) is left out
    return {"seed": "all", "tool_s": statistics.median(r["tool_s"] for r in rows),
            "baseline_s": statistics.median(r["baseline_s"] for r in rows),
            "tool_reached": all(r["tool_reached"] for r in rows),
            "baseline_reached": all(r["baseline_reached"] for r in rows),
            "speedup": ratios.median(), "speedup_min": ratios.min(), "speedup_max": ratios.max(),
            "speedup_is": "median of: " + "; ".join(sorted({r["speedup_is"] for r in rows})),
            "tool_best": statistics.median(r["tool_best"] for r in rows),
            "baseline_best": statistics.median(r["baseline_best"] for r in rows)}


@register_suite("speed")
def speed_suite(out_dir: Path, device: str = "auto", quick: bool = False, seeds: int | None = None,
                minutes: float | None = None) -> pd.DataFrame:
    """Time to the target accuracy per seed and their ratio (baseline over tool; above 1: the tool is faster).

    Writes speed.csv (the table), speed_trials.csv (every trial of every run) and speed.png.
    """
    device = str(resolve_device(device))
    target = QUICK_TARGET if quick else TARGET
    budget_s = 60 * (minutes or (QUICK_MINUTES if quick else MINUTES))
    max_epochs = QUICK_EPOCHS if quick else MAX_EPOCHS
    rows, curves = [], []
    with tempfile.TemporaryDirectory(prefix="speed-") as folder:
        warm_up(TASK, device, Path(folder))
        load_baseline("random_search").search(TASK, trials=1, max_epochs=1, device=device)  # its one-off costs too
        for seed in range(seeds or (1 if quick else SEEDS)):
            frames = {}
            for method, run in zip(METHODS, (run_tool, run_baseline)):
                frames[method] = run(seed, budget_s, max_epochs, device, Path(folder))
                curves.append(frames[method].assign(method=method, seed=seed))
            rows.append({"seed": str(seed), **compare(time_to_target(frames["tool"], target),
                                                      time_to_target(frames["baseline"], target), budget_s),
                         "tool_best": final_best(frames["tool"]), "baseline_best": final_best(frames["baseline"])})
    table = pd.DataFrame([*rows, summarise(rows)]).assign(
        target=target, budget_s=budget_s, max_epochs=max_epochs, threads=torch.get_num_threads(), device=device,
        machine=machine(device))
    write_outputs(out_dir, "speed", table, pd.concat(curves, ignore_index=True), _plot)
    return table


def _plot(trials: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    first, overall = table.iloc[0], table.iloc[-1]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (method, seed), run in trials.groupby(["method", "seed"]):
        label = "this tool (TPE + Hyperband)" if method == "tool" else "random search, nn.TransformerEncoder"
        ax.plot(run["seconds"], run["best"], drawstyle="steps-post", color="C0" if method == "tool" else "C1",
                linestyle=("-", "--", ":", "-.")[seed % 4], label=f"{label}, seed {seed}")
    ax.axhline(first["target"], color="gray", linestyle=":", label=f"target {first['target']:g}")
    ax.axvline(first["budget_s"], color="gray", linewidth=0.8)
    ax.set(xlabel="wall time since the run started (s)", ylabel="best validation accuracy so far",
           title=f"Time to target on {TASK}, {first['machine']}: baseline/tool time ratio median "
                 f"{overall['speedup']:.2f} (min {overall['speedup_min']:.2f}, max {overall['speedup_max']:.2f})")
    ax.title.set_fontsize(9)
    for method, color in (("tool", "C0"), ("baseline", "C1")):  # where each run first reached the target
        hits = table.iloc[:-1][table.iloc[:-1][f"{method}_reached"].astype(bool)]
        ax.plot(hits[f"{method}_s"], [first["target"]] * len(hits), "o", color=color)
    lowest = min(first["target"], trials["best"].min()) if trials["best"].notna().any() else 0.0
    ax.set_xlim(left=0)
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
