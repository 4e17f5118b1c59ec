"""Suite ``speed``: how soon this tool reaches what the peer's search reaches in the whole budget, on digits.

The peer (``scripts/baselines/transformer_search.py``) is the plain way people
search today: Optuna's TPE over a stock ``nn.TransformerEncoder`` (width, heads,
depth, feed-forward, dropout, learning rate and batch size searched), 30 epochs a
trial in a ``DataLoader`` loop, no pruning. It runs its own recipe and is not held
to this tool's epoch ceiling, space or trial timeout. The tool runs
:func:`nas.search.run.run_search` with its defaults.

Per seed both start together, each in its own spawned process with one torch
thread, so on a machine with two cores each has one; both get the same seeded
split and the same wall-time budget, and only trials that ended within it count.
The peer's best validation accuracy at the end of the budget is the target P:
the peer's time to P against the tool's gives the ratio (above 1: the tool is
faster). A tool that never reaches P counts the budget as its time, so its ratio
is an upper bound, and the table says so. Each side's test accuracy is that of
its best-validation trial at the end of the budget. The targets: a ratio of at
least 10 and a tool test accuracy at least the peer's.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import platform
import queue as queues
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatter, ScalarFormatter  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks import load_baseline, register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from benchmarks.curves import best_so_far, final_best, time_to_target, trial_frame, warm_up, write_outputs  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402
from nas.training.device import resolve_device  # noqa: E402

TASK = "digits"
MINUTES, QUICK_MINUTES = 12.0, 0.1
SEEDS = 3
QUICK_EPOCHS = 2  # a quick run only checks the machinery, so both sides train this many; a real run: each its own
RATIO_TARGET = 10.0
TRIAL_CAP = 100_000  # runs end on their time budget, never on this
METHODS = ("tool", "peer")
START_S = 600.0  # how long a child may take to import and warm up before the budget starts


def _side(method: str, seed: int, budget_s: float, device: str, folder: str, quick_epochs: int | None,
          barrier, messages) -> None:
    """One search in a spawned process: warm up, wait for the other side, report the start, run, report the end."""
    torch.set_num_threads(1)
    url = _storage(method, seed, Path(folder))
    try:
        if method == "tool":
            warm_up(TASK, device, Path(folder))
            config = SearchConfig(trials=TRIAL_CAP, task=TASK, timeout=budget_s, seed=seed, device=device, quiet=True,
                                  results_dir=folder, storage=url, study=_study(method, seed), max_epochs=quick_epochs)
            run = lambda: run_search(config, out=io.StringIO())  # noqa: E731
        else:
            peer = load_baseline("transformer_search")
            peer.search(TASK, trials=1, epochs=1, device=device)  # its one-off costs, as the tool's warm-up
            epochs = {} if quick_epochs is None else {"epochs": quick_epochs}
            run = lambda: peer.search(TASK, trials=TRIAL_CAP, seed=seed, timeout=budget_s, device=device,  # noqa: E731
                                      storage=url, study_name=_study(method, seed), **epochs)
        barrier.wait(timeout=START_S)
        messages.put(("start", method, datetime.now()))  # Optuna stamps trials with datetime.now() too
        run()
        messages.put(("done", method, None))
    except BaseException:  # the parent must hear of it first, then the other side must stop waiting
        messages.put(("error", method, traceback.format_exc()))
        barrier.abort()


def _storage(method: str, seed: int, folder: Path) -> str:
    return f"sqlite:///{folder / f'{_study(method, seed)}.db'}"


def _study(method: str, seed: int) -> str:
    """A name per seed: Hyperband brackets trial n by a hash of the study's name, so one name for every seed would
    put each seed's n-th trial in the same bracket and the seeds would not be independent."""
    return f"{method}-seed{seed}"


def run_pair(seed: int, budget_s: float, device: str, folder: Path,
             quick_epochs: int | None) -> dict[str, datetime]:
    """Both searches of one seed at once, each in a spawned process; returns when each started.

    A search stops starting trials at the budget and ends with its trial in hand;
    one still running long after is stopped, since later trials do not count.
    """
    context = multiprocessing.get_context("spawn")
    messages, barrier = context.Queue(), context.Barrier(len(METHODS))
    children = {m: context.Process(target=_side, daemon=True,
                                   args=(m, seed, budget_s, device, str(folder), quick_epochs, barrier, messages))
                for m in METHODS}
    for child in children.values():
        child.start()
    starts, done, deadline = {}, set(), time.monotonic() + START_S
    try:
        while len(done) < len(METHODS) and time.monotonic() < deadline:
            try:
                kind, method, value = messages.get(timeout=1.0)
            except queues.Empty:
                if silent := [m for m, c in children.items() if c.exitcode not in (None, 0)]:  # killed, no word
                    raise RuntimeError(f"the {silent[0]} search of seed {seed} died with exit code "
                                       f"{children[silent[0]].exitcode}")
                continue
            if kind == "error":
                raise RuntimeError(f"the {method} search of seed {seed} failed:\n{value}")
            if kind == "start":
                starts[method] = value
                if len(starts) == len(METHODS):
                    deadline = time.monotonic() + 1.25 * budget_s + 30
            else:
                done.add(method)
        if len(starts) < len(METHODS):
            raise RuntimeError(f"the searches of seed {seed} did not start within {START_S:g} s")
    finally:
        for child in children.values():
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join()
    return starts


def read_run(storage: str, study_name: str, start: datetime, budget_s: float) -> pd.DataFrame:
    """A finished search's trials that ended within the budget, as a best-so-far frame with each trial's ``test``."""
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    tests = {t.number: t.user_attrs.get("test") for t in trials}
    frame = trial_frame(trials, start)
    frame = frame[frame["seconds"] <= budget_s]
    return best_so_far(frame.assign(test=frame["number"].map(tests).astype(float)))


def best_trial_test(frame: pd.DataFrame) -> float:
    """The test accuracy of the trial with the best validation accuracy (the first to end, among equals)."""
    complete = frame.dropna(subset=["best_val"])
    return float(complete.loc[complete["best_val"].idxmax(), "test"]) if len(complete) else math.nan


def compare(peer: pd.DataFrame, tool: pd.DataFrame, budget_s: float) -> dict:
    """One seed's row from two best-so-far frames cut at the budget: the peer's final best P, each side's time to
    P (the tool's is the budget where it never got there, a lower bound), the ratio peer/tool, and the test
    accuracy of each side's best-validation trial."""
    target = final_best(peer)
    peer_at, tool_at = time_to_target(peer, target), time_to_target(tool, target)
    reached = tool_at.seconds is not None
    tool_s = tool_at.seconds if reached else budget_s
    ratio = peer_at.seconds / tool_s if peer_at.seconds is not None else math.nan
    if math.isnan(target):
        ratio_is = "none: the peer completed no trial in the budget"
    else:
        ratio_is = "exact" if reached else "upper bound: the tool did not reach the peer's best"
    peer_test, tool_test = best_trial_test(peer), best_trial_test(tool)
    return {"peer_best": target, "peer_s": math.nan if peer_at.seconds is None else peer_at.seconds,
            "peer_trials": peer_at.trials, "tool_s": tool_s, "tool_trials": tool_at.trials, "tool_reached": reached,
            "ratio": ratio, "ratio_is": ratio_is, "tool_best": final_best(tool), "peer_test": peer_test,
            "tool_test": tool_test, "peer_ended": len(peer), "tool_ended": len(tool),
            "ratio_ok": bool(ratio >= RATIO_TARGET), "test_ok": bool(tool_test >= peer_test)}


def summarise(rows: list[dict]) -> dict:
    """The row over all seeds: medians, the min and max of the ratio and test accuracies, and whether the targets
    hold for the medians (``ratio_ok``, ``test_ok``) and on how many seeds (``*_ok_seeds``)."""
    def median(key: str) -> float:
        return float(pd.Series([r[key] for r in rows], dtype=float).median())  # NaN rows are left out

    summary = {"seed": "all", **{k: median(k) for k in ("peer_best", "peer_s", "tool_s", "ratio", "tool_best",
                                                        "peer_test", "tool_test")},
               "tool_reached": all(r["tool_reached"] for r in rows),
               "ratio_is": "median of: " + "; ".join(sorted({r["ratio_is"] for r in rows}))}
    for key in ("ratio", "peer_test", "tool_test"):
        values = pd.Series([r[key] for r in rows], dtype=float)
        summary[f"{key}_min"], summary[f"{key}_max"] = values.min(), values.max()
    summary["ratio_ok"] = bool(summary["ratio"] >= RATIO_TARGET)
    summary["test_ok"] = bool(summary["tool_test"] >= summary["peer_test"])
    for key in ("ratio_ok", "test_ok"):
        summary[f"{key}_seeds"] = sum(r[key] for r in rows)
    return summary


@register_suite("speed")
def speed_suite(out_dir: Path, device: str = "auto", quick: bool = False, seeds: int | None = None,
                minutes: float | None = None) -> pd.DataFrame:
    """Per seed, the tool's and the peer's time to the peer's final best validation accuracy, their ratio and
    both test accuracies; a last row over all seeds.

    Writes speed.csv (the table), speed_trials.csv (every trial that ended in the budget) and speed.png.
    """
    device = str(resolve_device(device))
    budget_s = 60 * (minutes or (QUICK_MINUTES if quick else MINUTES))
    quick_epochs = QUICK_EPOCHS if quick else None
    rows, curves = [], []
    with tempfile.TemporaryDirectory(prefix="speed-") as folder:
        for seed in range(seeds or (1 if quick else SEEDS)):
            seed_folder = Path(folder) / f"seed{seed}"  # the tool's warm-up study is per process, so per seed
            seed_folder.mkdir()
            starts = run_pair(seed, budget_s, device, seed_folder, quick_epochs)
            frames = {m: read_run(_storage(m, seed, seed_folder), _study(m, seed), starts[m], budget_s) for m in METHODS}
            curves += [frames[m].assign(method=m, seed=seed) for m in METHODS]
            rows.append({"seed": str(seed), **compare(frames["peer"], frames["tool"], budget_s)})
    table = pd.DataFrame([*rows, summarise(rows)]).assign(
        budget_s=budget_s, peer_epochs=quick_epochs or load_baseline("transformer_search").EPOCHS,
        ratio_target=RATIO_TARGET, threads=1, device=device, machine=_machine(device))
    write_outputs(out_dir, "speed", table, pd.concat(curves, ignore_index=True), _plot)
    return table


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return machine(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, one torch thread per search"


def _plot(trials: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    seeds, overall = table.iloc[:-1], table.iloc[-1]
    budget_s = overall["budget_s"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = {"tool": "this tool (defaults)",
              "peer": f"peer: TPE, nn.TransformerEncoder, {overall['peer_epochs']} epochs, no pruning"}
    for (method, seed), run in trials.groupby(["method", "seed"]):
        seconds, best = [*run["seconds"], budget_s], [*run["best"], run["best"].iloc[-1]]  # flat to the budget
        ax.plot(seconds, best, drawstyle="steps-post", color="C0" if method == "tool" else "C1",
                linestyle=("-", "--", ":", "-.")[seed % 4], label=f"{labels[method]}, seed {seed}")
    for i, (_, row) in enumerate(seeds.dropna(subset=["peer_best"]).iterrows()):  # the peer's final best, reached
        ax.plot([row["tool_s"], row["peer_s"]], [row["peer_best"]] * 2, color="gray", linewidth=0.8)
        ax.plot(row["peer_s"], row["peer_best"], "o", color="C1",
                label=None if i else "peer's final best, where the peer reached it")
        ax.plot(row["tool_s"], row["peer_best"], "o", color="C0", fillstyle="full" if row["tool_reached"] else "none",
                label=None if i else "where the tool reached it (hollow: never, at the budget)")
    ax.axvline(budget_s, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))  # plain, not 2x10^0
    ax.set(xlabel="wall time since the search started (s, log scale)", ylabel="best validation accuracy so far",
           title=f"{TASK}, {overall['machine']}, {budget_s / 60:g} min per search\n"
                 f"time to the peer's final best, peer/tool: median {overall['ratio']:.1f}x (min "
                 f"{overall['ratio_min']:.1f}, max {overall['ratio_max']:.1f}); test of the best trial (medians): "
                 f"tool {overall['tool_test']:.3f}, peer {overall['peer_test']:.3f}")
    ax.title.set_fontsize(8)
    finite = trials["best"].dropna()
    ax.set_ylim(max(0.0, (finite.min() if len(finite) else 0.0) - 0.05), 1.0)
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
