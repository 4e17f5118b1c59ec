"""What a trial records, as Optuna user attributes: few, fat writes that any Optuna reader can use.

Before training, two: ``arch`` (the ArchSpec's canonical JSON, which
``ArchSpec.from_json`` rebuilds) and ``summary``. When it ends, one JSON
attribute ``result`` (learning curve, timings, recipe, provenance) and the flat
columns that report, export and ``trials_dataframe()`` read: ``best_val``,
``test``, ``params``, ``flops``, ``latency_ms``, and ``reason`` when it ended short.
A search with probe objectives adds ``probes``: each probe's scores.

>>> result_of(study.best_trial)["val_history"]
[0.91, 0.95, 0.96]
"""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas.training.cross_validation import smoothing_window

ARCH, SUMMARY, RESULT, REASON = "arch", "summary", "result", "reason"
BEST_VAL, TEST = "best_val", "test"
COST_ATTRS = ("params", "flops", "latency_ms")
FLAT = (BEST_VAL, TEST, *COST_ATTRS)
PROBES = "probes"  # per probe objective: val (the objective), test, epochs, seconds
RETRY_OF = "retry_of"  # set when the candidate is enqueued again after its worker died


def result_of(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's ``result`` attribute (``{}`` while it runs, or when it failed before training)."""
    value = trial.user_attrs.get(RESULT)
    return value if isinstance(value, dict) else {}


def recorded(trial: FrozenTrial, key: str) -> Any:
    """One value of the trial's record, flat or inside ``result``: ``recorded(t, "epochs")``."""
    if key in trial.user_attrs:
        return trial.user_attrs[key]
    return result_of(trial).get(key)


def fold_loss(trial: FrozenTrial) -> float | None:
    """The mean fold validation loss of a cross-validated trial at its best epoch; None where not recorded."""
    losses = result_of(trial).get("cv", {}).get("losses")
    return sum(losses) / len(losses) if losses else None


def scored_by_spike(trials: list[FrozenTrial]) -> str | None:
    """A sentence naming the complete cross-validated trials an older version scored by their mean fold curve's
    best single epoch rather than its trailing mean (their record names no ``smoothing``), where the two differ:
    such a trial ranks above one scored now for the same curve. None when there are none."""
    records = {t.number: result_of(t) for t in trials if t.state == TrialState.COMPLETE}
    old = [number for number, record in records.items() if "smoothing" not in record.get("cv", {"smoothing": None})
           and smoothing_window(int(record.get("train", {}).get("max_epochs", 1))) > 1]
    if not old:
        return None
    listed = ", ".join(map(str, old[:5])) + (f" and {len(old) - 5} more" if len(old) > 5 else "")
    return (f"{len(old)} trial(s) of this study ({listed}) were scored by an older version, by their fold curve's "
            f"best single epoch; trials scored now take its trailing mean, which ranks the same curve lower. To "
            f"compare like with like, search again under a new --study name.")


__all__ = ["ARCH", "BEST_VAL", "COST_ATTRS", "FLAT", "PROBES", "REASON", "RESULT", "RETRY_OF", "SUMMARY", "TEST",
           "fold_loss", "recorded", "result_of", "scored_by_spike"]
