"""The answer a report opens with: the best composite against the model a user would have built by hand,
then which attention types and topologies helped or hurt, and how sure that is.

The hand-made model is the portfolio's stock Transformer: the best complete
portfolio trial whose every block is one multi-head dot-product attention over
linear patches. On UCR tasks MiniRocket, fitted on the same split, stands beside them.

>>> result = answer(study, exported=metrics, minirocket=peer)
>>> result.sentence()
'The best composite, trial 57 (...), scores 0.981 validation accuracy (5-fold CV, ± 0.012), 2.1 points above ...'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.models.spec import ArchSpec
from nas.results.study import objectives, ranked_trials
from nas.search.portfolio import PORTFOLIO_ATTR
from nas.search.record import ARCH, BEST_VAL, SUMMARY, TEST, result_of

MIN_TRIALS = 5  # fewer complete trials of a family than this: too few to say whether it helped
SURE = 2.0  # a family's mean this many standard errors from the others' mean counts as a clear effect


@dataclass(frozen=True)
class Entry:
    """One row of the answer: a model, its validation score (with spread over folds when cross-validated), test."""

    label: str
    trial: int | None
    summary: str
    val: float | None
    val_std: float | None
    scored_by: str
    test: float | None
    test_std: float | None = None


@dataclass(frozen=True)
class Answer:
    metric: str
    maximize: bool
    best: Entry
    stock: Entry | None
    final: Entry | None
    minirocket: Entry | None

    @property
    def margin(self) -> float | None:
        """Points by which the best beats the stock Transformer on validation (negative: it loses)."""
        if self.stock is None or self.best.val is None or self.stock.val is None:
            return None
        gap = self.best.val - self.stock.val
        return 100 * (gap if self.maximize else -gap)

    def sentence(self) -> str:
        b = self.best
        text = (f"The best composite, trial {b.trial} (`{b.summary}`), scores {_score(b)} validation {self.metric}"
                f" ({_spread(b)})")
        if self.stock is None:
            text += ("; the study holds no complete stock-Transformer portfolio trial (portfolio off, or an older "
                     "study), so there is no hand-made model to measure it against.")
        elif self.stock.trial == b.trial:
            text += ": it is the portfolio's stock Transformer itself; no composite beat it."
        else:
            text += (f", {abs(self.margin):.1f} points {'above' if self.margin >= 0 else 'below'} the portfolio's "
                     f"stock Transformer (trial {self.stock.trial}, {_score(self.stock)}).")
        tests = [e for e in (self.best, self.stock, self.final, self.minirocket) if e is not None and e.test is not None]
        if tests:
            text += " On the test split: " + "; ".join(f"{e.label} {_test(e)}" for e in tests) + "."
        return text

    def table(self) -> pd.DataFrame:
        rows = [e for e in (self.best, self.stock, self.final, self.minirocket) if e is not None]
        return pd.DataFrame([{"model": e.label, "trial": e.trial, "validation": e.val, "spread": e.val_std,
                              "scored by": e.scored_by, "test": e.test, "test spread": e.test_std,
                              "architecture": e.summary} for e in rows])


def is_stock_transformer(spec: ArchSpec) -> bool:
    """Every block a single dot-product attention (any heads), inputs embedded by linear patches."""
    return spec.embedding.type == "linear" and all(
        b.mixer.topology == "single" and b.mixer.branches[0].type == "dot" for b in spec.blocks)


def answer(study: optuna.Study, exported: dict[str, Any] | None = None,
           minirocket: dict[str, Any] | None = None) -> Answer:
    """The answer from the study alone, plus the exported final model's metrics and MiniRocket's when given."""
    goal = objectives(study)
    maximize = goal.maximize[goal.primary]
    ranked = ranked_trials(study)
    stock = next((t for t in ranked if PORTFOLIO_ATTR in t.user_attrs and ARCH in t.user_attrs
                  and is_stock_transformer(ArchSpec.from_json(t.user_attrs[ARCH]))), None)
    final = None
    if exported and exported.get("study") == study.study_name:
        final = _final_entry(exported)
    peer = None
    if minirocket:
        peer = Entry(f"{minirocket['model']}, same split", None, "", None, None, "fitted on train + validation",
                     minirocket["test"])
    return Answer(study.user_attrs.get("metric", "metric"), maximize, _entry("best composite", ranked[0], goal.primary),
                  None if stock is None else _entry("stock Transformer (portfolio)", stock, goal.primary), final, peer)


def helped_or_hurt(table: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Per topology and attention type: complete trials, mean and std of the validation metric, the difference
    of that mean from the other trials' mean, and a verdict only where it is beyond :data:`SURE` standard errors."""
    done = table[table["state"] == "COMPLETE"].dropna(subset=["val"])
    views = {"topology": done.assign(family=done["topology"]),
             "attention": done.explode("types").assign(family=lambda d: d["types"])}
    rows = []
    for view, frame in views.items():
        for family, group in frame.dropna(subset=["family"]).groupby("family"):
            others = done[~done["trial"].isin(group["trial"])]["val"]
            values = group["val"]
            diff = values.mean() - others.mean() if len(others) else math.nan
            error = math.sqrt(values.var(ddof=1) / len(values) + others.var(ddof=1) / len(others)) \
                if len(values) > 1 and len(others) > 1 else math.nan
            rows.append({"view": view, "family": family, "complete": len(values), "mean": values.mean(),
                         "std": values.std(ddof=1) if len(values) > 1 else math.nan, "vs_others": diff,
                         "verdict": _verdict(diff if maximize else -diff, error, len(values))})
    out = pd.DataFrame(rows, columns=["view", "family", "complete", "mean", "std", "vs_others", "verdict"])
    return out.sort_values(["view", "mean"], ascending=[False, not maximize], ignore_index=True)


def _verdict(gain: float, error: float, n: int) -> str:
    if n < MIN_TRIALS or math.isnan(error):
        return f"too few trials (n < {MIN_TRIALS}) to say"
    if error > 0 and abs(gain) > SURE * error:
        return "helped" if gain > 0 else "hurt"
    return f"no clear effect (within {SURE:g} standard errors)"


def _entry(label: str, trial: FrozenTrial, primary: int) -> Entry:
    cv = result_of(trial).get("cv")
    value = trial.values[primary] if trial.state == TrialState.COMPLETE else trial.user_attrs.get(BEST_VAL)
    return Entry(label, trial.number, trial.user_attrs.get(SUMMARY, ""), value, None if cv is None else cv["std"],
                 f"{cv['folds']}-fold CV" if cv else "one validation split", trial.user_attrs.get(TEST))


def _final_entry(exported: dict[str, Any]) -> Entry:
    """The exported model: one network (test mean ± std over the final seeds), or the seeds' ensemble (its one test
    value; the seeds' own mean ± std said beside it)."""
    members, final = exported.get("members", 1), exported.get("final") or {}
    if members == 1:
        return Entry("final model (exported)", exported.get("trial"), exported.get("summary") or "", None, None,
                     "retrained on train + validation", exported.get("test"), exported.get("test_std"))
    alone = f"; one seed alone {final['test_mean']:.3f} ± {final['test_std']:.3f}" if "test_mean" in final else ""
    return Entry(f"final model (exported: ensemble of {members} seeds)", exported.get("trial"),
                 exported.get("summary") or "", None, None, f"retrained on train + validation{alone}",
                 exported.get("test"))


def _score(entry: Entry) -> str:
    return "-" if entry.val is None else f"{entry.val:.3f}"


def _spread(entry: Entry) -> str:
    return entry.scored_by if entry.val_std is None else f"{entry.scored_by}, ± {entry.val_std:.3f}"


def _test(entry: Entry) -> str:
    return f"{entry.test:.3f}" + ("" if entry.test_std is None else f" ± {entry.test_std:.3f}")


__all__ = ["Answer", "Entry", "answer", "helped_or_hurt", "is_stock_transformer"]
