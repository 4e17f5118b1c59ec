"""Studies for the report and export tests: a tiny real search (made once per session) and hand-made ones."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import nas.search.objective
import nas.search.loop
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec
from nas.search.config import SearchConfig
from nas.search.run import run_search

TINY = "tiny"


@dataclass
class TinyStudy:
    """A finished search on the tiny space; ``states`` holds the best-epoch weights of each complete trial."""

    name: str
    url: str
    results: Path
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def load(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.url)


class KeepingObjective(nas.search.objective.Objective):
    """The search's objective, remembering every complete trial's best-epoch weights for exactness checks."""

    states: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, trial: optuna.Trial) -> float:
        value = super().__call__(trial)
        KeepingObjective.states[trial.number] = self.last_result.best_state
        return value


_made: dict[str, TinyStudy] = {}


def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    """4 trials of 2 epochs on digits (seed 0: 2 complete, 2 pruned), searched once per test session.

    Tests read it and write their outputs elsewhere, so sharing it is safe.
    """
    if TINY not in _made:
        root = tmp_path_factory.mktemp("tiny-study")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(nas.search.loop, "Objective", KeepingObjective)
            outcome = run_search(SearchConfig(space="tiny", trials=4, max_epochs=2, study=TINY, results_dir=str(root),
                                              quiet=True), out=io.StringIO())
        _made[TINY] = TinyStudy(outcome.study_name, outcome.storage, root, dict(KeepingObjective.states))
    return _made[TINY]


def arch(topology: str, *types: str) -> str:
    branches = tuple(AttentionSpec(t, 1) for t in types)
    merge = "sum" if topology == "parallel" else None
    return ArchSpec(d_model=8, blocks=(BlockSpec(MixerSpec(topology, branches, merge)),)).to_json()


def hand_study(rows: list[dict], directions: tuple[str, ...] = ("maximize",), metric: str = "accuracy",
               task: str = "digits") -> optuna.Study:
    """An in-memory study of finished trials, each row giving ``values`` (or ``state``), an ``arch`` and attrs.

    Trials start a minute apart and take ``seconds`` (default 10); ``lr`` becomes a sampled parameter.
    """
    study = optuna.create_study(directions=list(directions))
    study.set_user_attr("metric", metric)
    study.set_user_attr("task", task)
    start = dt.datetime(2026, 1, 1)
    for i, row in enumerate(rows):
        row = dict(row)
        state = row.pop("state", TrialState.COMPLETE)
        values = row.pop("values", None)
        lr, seconds, system = row.pop("lr", 1e-3), row.pop("seconds", 10), row.pop("system_attrs", {})
        spec = row.pop("arch", arch("single", "dot"))
        attrs = {"arch": spec, "summary": ArchSpec.from_json(spec).summary(), "result": {"train_seconds": seconds},
                 **row}
        begin = start + dt.timedelta(minutes=i)
        study.add_trial(FrozenTrial(
            number=i, state=state, value=None, values=values if state == TrialState.COMPLETE else None,
            datetime_start=begin, datetime_complete=begin + dt.timedelta(seconds=seconds),
            params={"lr": lr, "topology": ArchSpec.from_json(spec).blocks[0].mixer.topology},
            distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True),
                           "topology": CategoricalDistribution(["single", "parallel", "serial", "fused"])},
            user_attrs=attrs, system_attrs=system, intermediate_values={1: (values or [row.get("best_val", 0.0)])[0]},
            trial_id=i,
        ))
    return study
