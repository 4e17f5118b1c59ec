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

from optuna.trial import FrozenTrial

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


__all__ = ["ARCH", "BEST_VAL", "COST_ATTRS", "FLAT", "PROBES", "REASON", "RESULT", "RETRY_OF", "SUMMARY", "TEST",
           "fold_loss", "recorded", "result_of"]
