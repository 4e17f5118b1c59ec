"""The report's data, as DataFrames computed from a study alone; :mod:`nas.results.report.plots` only draws them.

>>> table = trials_table(study)           # one row per trial, every state
>>> ranking(study).head(10)               # complete trials, best first
>>> families(table, maximize=True)        # which topology / attention type wins, how reliably
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.search.failures import end_reason, retries
from nas.search.pareto import pareto_mask
from nas.results.study import objectives, ranked_trials
from nas.search.record import recorded

RANKING_COLUMNS = ["rank", "trial", "val", "test", "params", "flops", "latency_ms", "epochs", "seconds", "summary"]
MIN_TRIALS_FOR_IMPORTANCE = 5


def _families(arch_json: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(topology, attention types) of a stored architecture: topologies of its blocks joined by ``+``."""
    if not arch_json:
        return None, ()
    arch = json.loads(arch_json)
    topologies, types = [], set()
    for block in arch["blocks"]:
        mixer = block["mixer"]
        if mixer["topology"] not in topologies:
            topologies.append(mixer["topology"])
        types.update(branch["type"] for branch in mixer["branches"])
    return "+".join(topologies), tuple(sorted(types))


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, objective values (the task metric as ``val``), test metric, cost, family.

    ``val`` is the trial's objective value (complete trials only); ``best_val`` is
    the best validation metric it reached, pruned trials included.
    """
    goal = objectives(study)
    rows = []
    trials = study.get_trials(deepcopy=False)
    retried = retries(trials)
    for t in trials:
        attrs = t.user_attrs
        values = t.values if t.state == TrialState.COMPLETE and t.values is not None else [math.nan] * len(goal.names)
        topology, types = _families(attrs.get("arch"))
        rows.append({
            "trial": t.number, "state": t.state.name, **dict(zip(goal.names, values)),
            "best_val": attrs.get("best_val"), "test": attrs.get("test"), "params": attrs.get("params"),
            "flops": attrs.get("flops"), "latency_ms": attrs.get("latency_ms"), "epochs": recorded(t, "epochs"),
            "seconds": recorded(t, "train_seconds"), "summary": attrs.get("summary"),
            "topology": topology, "types": types, "started": t.datetime_start, "completed": t.datetime_complete,
            "reason": end_reason(t, retried),
        })
    columns = ["trial", "state", *goal.names, "best_val", "test", "params", "flops", "latency_ms", "epochs",
               "seconds", "summary", "topology", "types", "started", "completed", "reason"]
    return pd.DataFrame(rows, columns=columns)


def ranking(study: optuna.Study, top: int | None = None) -> pd.DataFrame:
    """Complete trials best first (the order export picks from), ``top`` of them or all.

    Multi-objective studies get a column per other objective and ``pareto``
    (True where no complete trial dominates the row).
    """
    goal = objectives(study)
    order = [t.number for t in ranked_trials(study)]
    table = trials_table(study).set_index("trial").loc[order].reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    extra = [n for n in goal.names if n != "val"]
    if goal.multi:
        table["pareto"] = pareto_mask(table[list(goal.names)].to_numpy(), goal.maximize)
        extra.append("pareto")
    columns = RANKING_COLUMNS[:3] + extra + RANKING_COLUMNS[3:]
    return table[columns].head(top if top is not None else len(table)).reset_index(drop=True)


def _spread(values: pd.Series) -> float:
    return float(values.quantile(0.75) - values.quantile(0.25))


def families(table: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Per topology and per attention type: complete and pruned counts, best, median and spread (IQR) of ``val``.

    A trial counts under every attention type it uses. Rows are sorted best first within each view.
    """
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    views = {"topology": finished.assign(family=finished["topology"]),
             "attention": finished.explode("types").assign(family=lambda d: d["types"])}
    frames = []
    for view, rows in views.items():
        rows = rows.dropna(subset=["family"])
        done = rows[rows["state"] == "COMPLETE"].groupby("family")["val"]
        stats = pd.DataFrame({
            "complete": done.size(),
            "pruned": rows[rows["state"] == "PRUNED"].groupby("family").size(),
            "best": done.max() if maximize else done.min(),
            "median": done.median(),
            "iqr": done.apply(_spread),
        })
        stats[["complete", "pruned"]] = stats[["complete", "pruned"]].fillna(0).astype(int)
        stats = stats.sort_values("best", ascending=not maximize, na_position="last")
        frames.append(stats.rename_axis("family").reset_index().assign(view=view))
    columns = ["view", "family", "complete", "pruned", "best", "median", "iqr"]
    return pd.concat(frames, ignore_index=True)[columns]


def family_grid(table: pd.DataFrame, maximize: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best ``val``, complete count) per topology (rows) x attention type (columns), for the heatmap."""
    done = table[table["state"] == "COMPLETE"].explode("types").dropna(subset=["topology", "types"])
    grouped = done.groupby(["topology", "types"])["val"]
    best = (grouped.max() if maximize else grouped.min()).unstack()
    return best, grouped.size().unstack().reindex_like(best).fillna(0).astype(int)


def best_so_far(table: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Finished trials in completion order: seconds since the study started, ``val`` (NaN if pruned), best so far."""
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])].dropna(subset=["completed"])
    finished = finished.sort_values(["completed", "trial"])
    start = table["started"].dropna().min()
    best = (finished["val"].cummax() if maximize else finished["val"].cummin()).ffill()  # pruned rows: NaN val
    return pd.DataFrame({
        "trial": finished["trial"].to_numpy(),
        "elapsed_s": (finished["completed"] - start).dt.total_seconds().to_numpy(),
        "val": finished["val"].to_numpy(), "best": best.to_numpy(),
    })


def learning_curves(study: optuna.Study) -> pd.DataFrame:
    """Validation metric per epoch of every finished trial (long form: trial, state, epoch, val)."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        history = recorded(t, "val_history")
        points = enumerate(history, 1) if history else sorted(t.intermediate_values.items())
        rows += [{"trial": t.number, "state": t.state.name, "epoch": int(e), "val": v} for e, v in points]
    return pd.DataFrame(rows, columns=["trial", "state", "epoch", "val"])


def importances(study: optuna.Study) -> tuple[pd.Series | None, str | None]:
    """Optuna's parameter importances for the task metric (fANOVA), or None and the reason they are left out."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return None, f"parameter importances need {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has {len(done)}"
    primary = objectives(study).primary
    target = (lambda t: t.values[primary]) if len(study.directions) > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, target=target)
    except Exception as err:  # fANOVA refuses some studies (e.g. no parameter common to all trials)
        return None, f"parameter importances could not be computed: {type(err).__name__}: {err}"
    if not found:
        return None, "parameter importances: no parameter is shared by all complete trials"
    return pd.Series(found, name="importance").rename_axis("parameter"), None


def cost_front(table: pd.DataFrame, cost: str, maximize: bool) -> pd.DataFrame:
    """Complete trials with ``val`` and ``cost`` (e.g. ``params``), and whether each is on their Pareto front."""
    done = table[table["state"] == "COMPLETE"].dropna(subset=["val", cost])[["trial", "val", cost, "summary"]]
    done = done.astype({cost: float}).sort_values(cost).reset_index(drop=True)
    done["front"] = pareto_mask(done[["val", cost]].to_numpy(), [maximize, False]) if len(done) else []
    return done


def references(task: str | None, best: FrozenTrial) -> pd.DataFrame:
    """Published test accuracies for a bundled UCR task beside the best trial's; empty for other tasks."""
    from nas.data.registry import references_for

    published = references_for(task) if task else {}
    if not published:
        return pd.DataFrame(columns=["method", "test"])
    rows: list[dict[str, Any]] = [{"method": m, "test": v} for m, v in published.items()]
    rows.insert(0, {"method": f"attention-nas (trial {best.number}, best validation)", "test": best.user_attrs.get("test")})
    return pd.DataFrame(rows)


def maximize_primary(study: optuna.Study) -> bool:
    goal = objectives(study)
    return goal.maximize[goal.primary]


__all__ = ["best_so_far", "cost_front", "families", "family_grid", "importances", "learning_curves", "maximize_primary",
           "ranking", "references", "trials_table"]
