"""What one search command asks for, checked before anything is opened or written."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.data.mad import PROBES
from nas.models.measure import COSTS

SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("hyperband", "median", "none")
METRICS = ("accuracy", "mse")
PROBE_PREFIX = "probe:"
OBJECTIVES = (*METRICS, *COSTS, *(PROBE_PREFIX + probe for probe in PROBES))


def probe_of(objective: str) -> str | None:
    """The MAD probe an objective names (``probe:in_context_recall`` -> ``in_context_recall``), else None."""
    return objective[len(PROBE_PREFIX):] if objective.startswith(PROBE_PREFIX) else None


def maximized(objective: str, larger_is_better: bool) -> bool:
    """Whether a search maximises ``objective``: the task metric as the task says, a probe's accuracy always, a cost
    never."""
    return objective not in COSTS and (probe_of(objective) is not None or larger_is_better)


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search command asks for; ``None`` storage means ``sqlite:///<results_dir>/<study>.db``."""

    trials: int = 200
    task: str = "digits"
    space: str = "default"
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    max_epochs: int | None = None  # None: scaled to the data (see nas.search.budget); a number is final
    min_examples: int = 25_000  # training examples every candidate may see at least (small sets: hundreds of epochs)
    folds: int = 5  # k of the cross-validation that scores small data
    cv_below: int = 1000  # a task with fewer non-test samples is cross-validated; 0: never
    timeout: float | None = None  # seconds for the whole search; no trial starts after it
    trial_timeout: float | None = 600.0  # seconds of training per trial: no candidate holds the whole search
    memory_gb: float | None = None  # memory one trial may use; None: 80% of what the device has free, per worker
    seed: int = 0
    device: str = "auto"
    allow_space_change: bool = False
    quiet: bool = False
    results_dir: str = "results"
    jobs: int = 1  # worker processes on the one storage
    devices: tuple[str, ...] | None = None  # devices the workers spread over (None: every CUDA device, else --device)
    objectives: tuple[str, ...] = ()  # () = the task's metric alone; else it, costs and probes: ("accuracy", "params")
    portfolio: bool = True  # a new study first runs the space's portfolio of known-good candidates

    def __post_init__(self) -> None:
        for name, low in (("trials", 1), ("max_epochs", 1), ("jobs", 1), ("min_examples", 1), ("folds", 2),
                          ("cv_below", 0)):
            value = getattr(self, name)
            if name == "max_epochs" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                why = " (one fold is no cross-validation; --cv-below 0 turns it off)" if name == "folds" else ""
                raise ValueError(f"{name}={value!r} must be an integer >= {low}{why}")
        for name in ("timeout", "trial_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds > 0")
        if self.memory_gb is not None and not self.memory_gb > 0:
            raise ValueError(f"memory_gb={self.memory_gb!r} must be a number of GiB > 0")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner={self.pruner!r} is unknown; allowed: {', '.join(PRUNERS)}")
        check_objectives(self.objectives)


def check_objectives(names: tuple[str, ...]) -> None:
    """Objectives are the task metric once, plus costs to minimise and probe skills to maximise, each at most once."""
    for name in names:
        probe = probe_of(name)
        if probe is not None and probe not in PROBES:
            raise ValueError(f"objective {name!r} names an unknown probe; allowed: "
                             f"{', '.join(PROBE_PREFIX + p for p in PROBES)}")
        if name not in OBJECTIVES:
            raise ValueError(f"objective {name!r} is unknown; allowed: {', '.join(OBJECTIVES)}")
    if names and sum(name in METRICS for name in names) != 1:
        raise ValueError(f"objectives={','.join(names)} must name the task metric ({' or '.join(METRICS)}) "
                         f"exactly once, e.g. accuracy,params")
    if len(set(names)) != len(names):
        raise ValueError(f"objectives={','.join(names)} names one objective twice")


@dataclass(frozen=True)
class SearchOutcome:
    """How a search ended: ``done``, ``already_done``, ``interrupted``, ``timeout`` or ``failing``."""

    status: str
    study_name: str
    storage: str
    finished: int
    trials: int


def default_study_name(task: str, space: str) -> str:
    """``digits-default``; characters a file name should not hold become ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{task}-{space}").strip("_")


__all__ = ["METRICS", "OBJECTIVES", "PROBE_PREFIX", "PRUNERS", "SAMPLERS", "SearchConfig", "SearchOutcome",
           "check_objectives", "default_study_name", "maximized", "probe_of"]
