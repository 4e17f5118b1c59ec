"""The ``quality`` suite's draws side by side: one run is one draw of split, folds, sampler and final seeds.

On sets of a few dozen series one draw can move a verdict by several points, so each ``--seed S`` run's table
(``quality.csv`` for seed 0, ``quality_seed<S>.csv`` otherwise) is summarised per task across the draws in the
same folder: the mean and spread over the draws of the final model's seeds' mean, of the same-size Transformer's
and of MiniRocket's, and in how many draws each target held. Only draws run with the same budget are merged.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DRAW_FILE = re.compile(r"quality(?:_seed(\d+))?\.csv")
SCORES = {"test_acc": "final model (mean of its seeds)", "baseline_test_acc": "Transformer, same size and recipe",
          "minirocket_test_acc": "MiniRocket, same split"}
TARGETS = {"beats_transformer": "baseline_test_acc", "within_3_of_minirocket": "minirocket_test_acc",
           "beats_minirocket": "minirocket_test_acc"}  # each target and the peer's score it is judged against


def draw_tables(out_dir: Path) -> pd.DataFrame:
    """Every draw's rows in ``out_dir``, seeds in order; a file named like a draw but for another seed than its
    rows say (a copy kept under another name) is skipped."""
    tables = []
    for path in sorted(out_dir.glob("quality*.csv")):
        match = DRAW_FILE.fullmatch(path.name)
        if not match:
            continue
        table = pd.read_csv(path)
        if "seed" in table and (table["seed"] == int(match.group(1) or 0)).all():
            tables.append(table)
    return pd.concat(tables, ignore_index=True).sort_values(["seed"], kind="stable") if tables else pd.DataFrame()


def same_budget(budget: str) -> str:
    """The budget line without its seed: draws that differ only in the seed are draws of one experiment."""
    return re.sub(r", seed \d+", "", budget)


def run_with(rows: pd.DataFrame, budget: str) -> pd.DataFrame:
    """The rows run with ``budget``, whatever their seed."""
    return rows[rows["budget"].map(same_budget) == same_budget(budget)] if len(rows) else rows


def summarise_draws(rows: pd.DataFrame) -> pd.DataFrame:
    """Per task, over its draws: each score's mean and standard deviation over the draws, and in how many draws
    each target held."""
    summary = []
    for task, draws in rows.groupby("task", sort=False):
        row = {"task": task, "draws": len(draws), "seeds": " ".join(str(int(s)) for s in draws["seed"])}
        for column in SCORES:
            row[f"{column}_mean"] = draws[column].mean()
            row[f"{column}_std"] = draws[column].std()  # NaN for one draw
        for target, peer in TARGETS.items():  # judged only where the peer ran: mqar has no MiniRocket
            judged = draws.loc[draws[peer].notna(), target]
            row[target] = int(judged.astype(bool).sum()) if len(judged) else np.nan
        row["winners"] = " / ".join(draws["winner_summary"])
        summary.append(row)
    if not summary:
        return pd.DataFrame()
    return pd.DataFrame(summary).astype({target: "Int64" for target in TARGETS}).assign(
        budget=same_budget(rows["budget"].iloc[-1]), machine=" / ".join(rows["machine"].unique()))


def write_draws(out_dir: Path, budget: str) -> pd.DataFrame:
    """``quality_draws.csv`` and ``.png`` from every draw in ``out_dir`` run with ``budget``; nothing where fewer
    than two draws share it (one draw is the suite's own table)."""
    rows = run_with(draw_tables(out_dir), budget)
    summary = summarise_draws(rows) if len(rows) else pd.DataFrame()
    if summary.empty or summary["draws"].max() < 2:
        return pd.DataFrame()
    summary.to_csv(out_dir / "quality_draws.csv", index=False)
    plot_draws(summary, rows, out_dir / "quality_draws.png")
    return summary


def plot_draws(summary: pd.DataFrame, rows: pd.DataFrame, path: Path) -> None:
    """Each score's mean over the draws as a bar with its spread, and each draw as a dot on it."""
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(summary) + 3), 4.4))
    x, width = np.arange(len(summary)), 0.8 / len(SCORES)
    for i, (column, label) in enumerate(SCORES.items()):
        offset = x + (i - (len(SCORES) - 1) / 2) * width
        ax.bar(offset, summary[f"{column}_mean"], width, yerr=summary[f"{column}_std"], capsize=2, label=label,
               color=f"C{i}", alpha=0.75)
        for position, task in zip(offset, summary["task"]):
            values = rows.loc[rows["task"] == task, column]
            ax.plot([position] * len(values), values, "o", color="black", markersize=3,
                    label="one draw" if i == 0 and position == offset[0] else None)
    labels = [f"{t.removeprefix('ucr:').split(':')[0]}\n{n} draw{'s' if n > 1 else ''}"
              for t, n in zip(summary["task"], summary["draws"])]
    ax.set_xticks(x, labels=labels, fontsize=8)
    ax.set(ylabel="test accuracy (mqar: recall)", ylim=(0, 1.05))
    first = summary.iloc[0]
    ax.set_title(f"Mean and spread over the searches' seeds, {first['machine']}\nper task and draw: "
                 f"{first['budget']}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
