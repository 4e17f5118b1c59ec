"""Drawing the report's DataFrames as PNGs; every function takes computed data and a path, and only draws.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot), so nothing here
touches a global backend or leaves figures open.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nas.results.report.attention import AttentionMaps

DPI = 120
FRONT = "tab:red"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _better(maximize: bool) -> str:
    return "higher is better" if maximize else "lower is better"


def plot_history(history: pd.DataFrame, metric: str, maximize: bool, path: Path) -> Path:
    """Best validation metric so far against trial number and against wall time."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    x_values = {"trial": history["trial"], "elapsed (minutes)": history["elapsed_s"] / 60}
    for ax, (label, x) in zip(axes, x_values.items()):
        ax.scatter(x, history["val"], s=18, color="tab:blue", alpha=0.6, label="complete trial")
        ax.step(x, history["best"], where="post", color=FRONT, linewidth=2, label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation {metric} ({_better(maximize)})")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(loc="best")
    axes[0].set_title("Best so far by trial")
    axes[1].set_title("Best so far by wall time")
    return _save(fig, path)


def plot_learning_curves(curves: pd.DataFrame, metric: str, best_trial: int, path: Path) -> Path:
    """Validation metric per epoch for every finished trial; pruned ones faded, the best one bold."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    styles = {"PRUNED": dict(color="grey", alpha=0.3, linewidth=1), "COMPLETE": dict(color="tab:blue", alpha=0.7)}
    labelled: set[str] = set()
    for (trial, state), rows in curves.groupby(["trial", "state"], sort=False):
        style = dict(styles[state])
        label = None if state in labelled else state.lower()
        labelled.add(state)
        if trial == best_trial:
            style, label = dict(color=FRONT, linewidth=2.5, zorder=3), f"best (trial {trial})"
        ax.plot(rows["epoch"], rows["val"], marker="." if len(rows) < 30 else None, label=label, **style)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"Learning curves of {curves['trial'].nunique()} finished trials")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_family_heatmap(best: pd.DataFrame, counts: pd.DataFrame, metric: str, maximize: bool, path: Path) -> Path:
    """Topology x attention type: best validation metric per cell, with the number of complete trials."""
    fig = Figure(figsize=(1.6 * best.shape[1] + 3, 1.0 * best.shape[0] + 2))
    ax = fig.subplots()
    image = ax.imshow(best.to_numpy(dtype=float), cmap="viridis" if maximize else "viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax, label=f"best validation {metric}")
    ax.set_xticks(range(best.shape[1]), best.columns)
    ax.set_yticks(range(best.shape[0]), best.index)
    ax.set_xlabel("attention type (a trial counts under each type it uses)")
    ax.set_ylabel("topology")
    values = best.to_numpy(dtype=float)
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for i in range(best.shape[0]):
        for j in range(best.shape[1]):
            value = values[i, j]
            text = "-" if math.isnan(value) else f"{value:.3f}\nn={counts.iat[i, j]}"
            dark = math.isnan(value) or (value < middle) == maximize
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_title("Which family wins: best validation metric")
    return _save(fig, path)


def plot_profile(scores: pd.DataFrame, title: str, path: Path) -> Path:
    """Mixer x probe heat map of capability scores (accuracy in [0, 1]), each cell written out."""
    values = scores.to_numpy(dtype=float)
    fig = Figure(figsize=(1.3 * scores.shape[1] + 3.5, 0.55 * scores.shape[0] + 2))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label="test accuracy on the probe's targets")
    ax.set_xticks(range(scores.shape[1]), [c.replace("_", "\n") for c in scores.columns])
    ax.set_yticks(range(scores.shape[0]), scores.index)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            value = values[i, j]
            ax.text(j, i, "-" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=9,
                    color="black" if value > 0.6 else "white")
    ax.set_title(title)
    return _save(fig, path)


def plot_importances(importance: pd.Series, path: Path) -> Path:
    """Horizontal bars of parameter importances, most important on top."""
    ordered = importance.sort_values()
    fig = Figure(figsize=(8, 0.4 * len(ordered) + 1.5))
    ax = fig.subplots()
    ax.barh(ordered.index, ordered.to_numpy(), color="tab:blue")
    ax.set_xlabel("importance for the validation metric (fANOVA, sums to 1)")
    ax.set_title("Which search choices matter")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_cost(fronts: dict[str, pd.DataFrame], metric: str, maximize: bool, path: Path) -> Path:
    """Validation metric against each cost (parameters, latency), the Pareto front drawn and its trials named."""
    fig = Figure(figsize=(5.5 * len(fronts), 4.5))
    axes = np.atleast_1d(fig.subplots(1, len(fronts), sharey=True))
    titles = {"params": "parameters", "latency_ms": "latency (ms, one sample)", "flops": "forward FLOPs"}
    for ax, (cost, table) in zip(axes, fronts.items()):
        front = table[table["front"]]
        ax.scatter(table[cost], table["val"], s=20, color="tab:blue", alpha=0.5, label="complete trial")
        ax.plot(front[cost], front["val"], "-o", color=FRONT, drawstyle="steps-post", label="Pareto front")
        for _, row in front.iterrows():
            ax.annotate(f"#{row['trial']}", (row[cost], row["val"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        if len(table) and table[cost].min() > 0 and table[cost].max() / table[cost].min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(titles.get(cost, cost))
        ax.set_title(f"Validation {metric} against {titles.get(cost, cost).split(' (')[0]}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation {metric} ({_better(maximize)})")
    axes[0].legend(loc="best")
    return _save(fig, path)


def plot_attention(maps: AttentionMaps, sample_labels: list[str], path: Path, max_heads: int = 4) -> Path:
    """Grid of attention maps: a row per sample, a column per (module, head); padding cropped."""
    columns = [(m, h) for m, w in enumerate(maps.weights) for h in range(min(w.shape[1], max_heads))]
    rows = len(sample_labels)
    fig = Figure(figsize=(2.4 * len(columns) + 1, 2.4 * rows + 0.8))
    axes = np.array(fig.subplots(rows, len(columns), squeeze=False))
    for r in range(rows):
        n = maps.lengths[r]
        for c, (m, h) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(maps.weights[m][r, h, :n, :n].numpy(), cmap="magma", vmin=0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{maps.labels[m]}\nhead {h + 1}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{sample_labels[r]}\nquery", fontsize=9)
            if r == rows - 1:
                ax.set_xlabel("key", fontsize=9)
    fig.suptitle(f"Attention maps of block {maps.block + 1} (brighter = more weight)")
    return _save(fig, path)


__all__ = ["plot_attention", "plot_cost", "plot_family_heatmap", "plot_history", "plot_importances",
           "plot_learning_curves"]
