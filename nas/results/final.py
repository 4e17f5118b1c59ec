"""The final model: the search's top candidates trained again with several seeds, the winner picked on
validation (never on test), then retrained on train + validation once per seed.

One run of the search is one seed of a candidate; on small data the best trial is
often the luckiest draw. So the top ``top_k`` distinct candidates are scored again:

- scored by cross-validation in the search (``result["cv"]``): the fold mean and spread it recorded;
- otherwise: trained on the train split with each of ``seeds`` seeds, and scored by the mean best
  validation value over the seeds.

The winner (best mean; cross-validated, the fewest parameters within one standard error of it, or the lowest
validation loss where every fold ties: see :func:`pick_winner`) is retrained on train + validation for its best
epoch count (cross-validated: the last epoch within one standard error of the best; its whole budget on a recall
task or where the search's time limit cut its schedule short: see :func:`final_epochs`), so the optimiser takes
that many epochs of the merged set, once per seed. The test
metric is reported as mean and spread over the seeds, and for the seeds' ensemble
(:class:`SeedEnsemble`: their mean class probabilities), which is what is exported
by default; else the first seed's weights, never the best by test.

>>> final = final_model(study, task, top_k=3, seeds=3, progress=print)
>>> final.test_mean, final.test_std, final.winner.trial.number
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial
from torch import nn

from nas.core.clock import duration
from nas.data import Task
from nas.data.folds import merge_splits
from nas.models.ensemble import SeedEnsemble
from nas.models.model import build_model
from nas.models.saved import ExportError
from nas.models.spec import ArchSpec
from nas.results.study import objectives, pick_trial, ranked_trials
from nas.search.record import ARCH, SUMMARY, fold_loss, result_of
from nas.search.study import trial_seed
from nas.training.trainer import TrainConfig, Trainer

TOP_K, SEEDS = 3, 3
SEED_STREAM = 1_000_000  # final seeds are trial seeds of numbers no trial has: never a search trial's own seed
PROGRESS_SECONDS = 1.0  # at most one progress line a second, besides one at the end of each run


@dataclass(frozen=True)
class Candidate:
    """One of the top trials, with its selection score: mean and spread over seeds (or folds), never test."""

    trial: FrozenTrial
    score_mean: float
    score_std: float
    scored_by: str  # "cv" (the search's fold mean) or "validation" (mean over seeds on the validation split)
    epochs: int  # the retrain's length: cross-validated, the last epoch within noise of the best; rescored, the
    # mean over the seeds' best epochs
    values: list[float]
    loss: float | None = None  # cross-validated: the mean fold validation loss at the best epoch, where recorded

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial.number, "summary": self.trial.user_attrs.get(SUMMARY), "score_mean": self.score_mean,
                "score_std": self.score_std, "scored_by": self.scored_by, "epochs": self.epochs, "values": self.values,
                "loss": self.loss}


@dataclass
class FinalResult:
    """The winner retrained once per seed on train + validation; ``models`` holds each seed's weights."""

    winner: Candidate
    candidates: list[Candidate]
    config: TrainConfig  # the winner's recipe for the first seed, epochs set to the final count
    merged_samples: int
    seeds: list[int]
    test_per_seed: list[float]
    models: list[nn.Module] = field(repr=False)
    ensemble_test: float  # the seeds' ensemble on the test split (with one seed, that seed's)
    trainer: Trainer = field(repr=False)
    steps_taken: list[int] = field(default_factory=list)
    picked_by: str = ""

    @property
    def steps(self) -> int:
        """Optimiser steps of one final run: the epochs over the merged set, not over the search's train split."""
        return self.config.max_epochs * math.ceil(self.merged_samples / self.config.batch_size)

    @property
    def ensemble(self) -> SeedEnsemble:
        return SeedEnsemble(self.models)

    @property
    def test_mean(self) -> float:
        return statistics.fmean(self.test_per_seed)

    @property
    def test_std(self) -> float:
        return statistics.pstdev(self.test_per_seed)

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": [c.to_dict() for c in self.candidates], "winner": self.winner.trial.number,
                "picked_by": self.picked_by,
                "epochs": self.config.max_epochs, "steps": self.steps, "steps_taken": self.steps_taken,
                "merged_samples": self.merged_samples, "batch_size": self.config.batch_size, "seeds": self.seeds,
                "recipe": asdict(self.config),
                "test_per_seed": self.test_per_seed, "test_mean": self.test_mean, "test_std": self.test_std,
                "ensemble_test": self.ensemble_test}


def final_seeds(study_seed: int, count: int) -> list[int]:
    """The seeds of the final runs: fixed by the study's seed, apart from every trial's."""
    return [trial_seed(study_seed, SEED_STREAM + i) for i in range(count)]


def top_candidates(study: optuna.Study, top_k: int, trial: int | None = None) -> list[FrozenTrial]:
    """The ``top_k`` best distinct candidates (architecture and recipe); only ``trial`` when given."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ExportError(f"top_k={top_k!r} must be an integer >= 1")
    if trial is not None:
        return [pick_trial(study, trial)]
    picked, seen = [], set()
    for t in ranked_trials(study):
        train = result_of(t).get("train", {})
        key = (t.user_attrs.get(ARCH), *(train.get(k) for k in ("lr", "weight_decay", "batch_size", "warmup", "augment")))
        if key not in seen and ARCH in t.user_attrs and train:
            seen.add(key)
            picked.append(t)
        if len(picked) == top_k:
            break
    return picked


def final_model(study: optuna.Study, task: Task, *, top_k: int = TOP_K, seeds: int = SEEDS, trial: int | None = None,
                device: str = "auto", progress: Callable[[str], None] | None = None) -> FinalResult:
    """Rescore the top candidates, pick the winner on validation (:func:`pick_winner`), retrain it on train +
    validation per seed."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ExportError(f"seeds={seeds!r} must be an integer >= 1")
    trials = top_candidates(study, top_k, trial)
    seed_list = final_seeds(study.user_attrs.get("seed", 0), seeds)
    maximize = objectives(study).maximize[objectives(study).primary]
    rescored = [t for t in trials if "cv" not in result_of(t)]
    clock = _Clock(progress, [(t, s, trial_recipe(t).max_epochs) for t in rescored for s in seed_list])
    candidates = [_score(t, task, seed_list, device, clock) for t in trials]
    winner, picked_by = pick_winner(candidates, maximize)
    merged = merge_splits(task.train, task.val)
    epochs = final_epochs(winner, task)
    clock.add([(winner.trial, s, epochs) for s in seed_list])
    tests, steps, models, trainer = [], [], [], None
    for seed in seed_list:
        config = replace(trial_recipe(winner.trial), max_epochs=epochs, seed=seed)
        model = build_model(ArchSpec.from_json(winner.trial.user_attrs[ARCH]), task.input_spec, seed=seed)
        model, trainer, taken = fit_final(task, model, config, device, f"the final run of trial {winner.trial.number}",
                                          on_epoch=clock.run("final", winner.trial, seed, epochs))
        tests.append(trainer.evaluate(model, trainer.test))
        steps.append(taken)
        models.append(model)
    ensemble_test = tests[0] if len(models) == 1 else trainer.evaluate(SeedEnsemble(models), trainer.test)
    config = replace(trial_recipe(winner.trial), max_epochs=epochs, seed=seed_list[0])
    return FinalResult(winner, candidates, config, len(merged), seed_list, tests, models, ensemble_test, trainer, steps,
                       picked_by)


def pick_winner(candidates: list[Candidate], maximize: bool = True) -> tuple[Candidate, str]:
    """The best mean; when it was cross-validated, the candidate with the fewest parameters among those within one
    standard error of it (Breiman's one-standard-error rule), and how it was picked.

    On a set of a few series a fold, the top candidates' fold means differ by less than their noise, and the best
    mean is the luckiest draw: a larger model wins that draw more often than it tests better. A mean over seeds on
    one validation split carries no such estimate of the data's noise, so there the best mean stands.

    Where the best candidate's folds all score alike (standard error 0: on a small set, every fold classified
    perfectly), the rule has no noise to measure, and the tied candidates' accuracy says nothing about which
    generalises; their mean fold validation loss still does, so the lowest loss wins the tie.
    """
    best = max(candidates, key=lambda c: c.score_mean if maximize else -c.score_mean)
    count = len(candidates)
    if best.scored_by != "cv" or len(best.values) < 2:
        return best, f"best {best.scored_by} mean among the top {count}"
    error = statistics.stdev(best.values) / math.sqrt(len(best.values))
    close = [c for c in candidates if c.scored_by == "cv" and
             (c.score_mean >= best.score_mean - error if maximize else c.score_mean <= best.score_mean + error)]
    if error == 0 and len(close) > 1 and all(c.loss is not None for c in close):
        winner = min(close, key=lambda c: c.loss)
        return winner, (f"lowest mean fold validation loss among the {len(close)} of the top {count} tied at a cv mean "
                        f"of {best.score_mean:.4f} on every fold")
    winner = min(close, key=lambda c: (c.trial.user_attrs.get("params", math.inf),
                                       -c.score_mean if maximize else c.score_mean))
    return winner, (f"fewest parameters within one standard error ({error:.4f}) of the best cv mean among the top "
                    f"{count}")


def final_epochs(winner: Candidate, task: Task) -> int:
    """The winner's best epoch count; the whole budget it was offered where its curve says little about that count:

    - its schedule was fitted to the search's time limit: that limit bounds the search's cost, not the model, and
      the curve it left ends where the clock stopped it (on a few hundred series, test accuracy still rises there);
    - the task's curve rises after a plateau (recall): the best epoch is the first at which recall formed, another
      seed forms it later, and a schedule cut to that epoch decays before it does.
    """
    trained = trial_recipe(winner.trial).max_epochs  # the span it trained by: fitted, or the whole offer
    offered = int(result_of(winner.trial)["train"]["max_epochs"])
    return offered if offered > trained or task.plateau_steps else winner.epochs


def fit_final(task: Task, model: nn.Module, config: TrainConfig, device: str = "auto", what: str = "retraining",
              on_epoch: Callable[[int, float], bool] | None = None) -> tuple[nn.Module, Trainer, int]:
    """Train ``model`` on train + validation for ``config.max_epochs`` epochs and keep the last epoch's weights;
    returns it, its trainer (test split intact) and the optimiser steps taken. Baselines train through this too,
    so both compare alike."""
    merged = merge_splits(task.train, task.val)
    trainer = Trainer(replace(task, train=merged, val=merged), device)
    final: dict = {}

    def keep_final(epoch: int, value: float) -> bool:
        # The trainer keeps the best "validation" epoch; here validation is training data, so keep the last.
        if epoch == config.max_epochs:
            final.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return bool(on_epoch and on_epoch(epoch, value))

    result = trainer.fit(model, replace(config, time_limit=None), on_epoch=keep_final)
    if not final:
        raise ExportError(f"{what} stopped early: {result.stop_reason}")
    model.load_state_dict(final)
    return model, trainer, result.steps


def trial_recipe(trial: FrozenTrial) -> TrainConfig:
    """The trial's training recipe as it trained (its schedule's span, when its time limit fitted it), with no time
    limit: a final run trains its whole epoch count."""
    record = result_of(trial)
    try:
        recipe = TrainConfig(**record["train"])
        return replace(recipe, max_epochs=record.get("schedule_epochs", recipe.max_epochs), time_limit=None)
    except (KeyError, TypeError) as err:
        raise ExportError(f"trial {trial.number} has no usable training recipe (user attribute 'result', key "
                          f"'train'): {err}") from None


def _score(trial: FrozenTrial, task: Task, seeds: list[int], device: str, clock: _Clock) -> Candidate:
    """The search's fold mean (and its retrain length: the last epoch within noise of the best) when it
    cross-validated; else the mean best validation value over ``seeds``."""
    record = result_of(trial)
    if "cv" in record:
        cv = record["cv"]
        return Candidate(trial, float(trial.user_attrs.get("best_val", statistics.fmean(cv["values"]))),
                         float(cv["std"]), "cv", int(cv.get("retrain_epochs") or record["best_epoch"]),
                         list(cv["values"]), fold_loss(trial))
    spec = ArchSpec.from_json(trial.user_attrs[ARCH])
    trainer = Trainer(task, device)
    values, epochs = [], []
    for seed in seeds:
        config = replace(trial_recipe(trial), seed=seed)
        result = trainer.fit(build_model(spec, task.input_spec, seed=seed), config,
                             on_epoch=clock.run("selection", trial, seed, config.max_epochs))
        if result.best_metric is None:
            raise ExportError(f"rescoring trial {trial.number} with seed {seed} failed: {result.stop_reason}")
        values.append(result.best_metric)
        epochs.append(result.best_epoch)
    return Candidate(trial, statistics.fmean(values), statistics.pstdev(values), "validation",
                     max(1, round(statistics.fmean(epochs))), values)


class _Clock:
    """Progress lines: which run (stage, candidate, seed), its epoch, and the time left at the mean epoch time."""

    def __init__(self, say: Callable[[str], None] | None, runs: list[tuple[FrozenTrial, int, int]]):
        self.say, self.total_epochs, self.done_epochs, self.runs_total = say, 0, 0, 0
        self.started, self.last, self.run_index = time.monotonic(), 0.0, 0
        self.add(runs)

    def add(self, runs: list[tuple[FrozenTrial, int, int]]) -> None:
        self.total_epochs += sum(epochs for _, _, epochs in runs)
        self.runs_total += len(runs)

    def run(self, stage: str, trial: FrozenTrial, seed: int, epochs: int) -> Callable[[int, float], bool]:
        self.run_index += 1
        index = self.run_index

        def on_epoch(epoch: int, value: float) -> bool:
            self.done_epochs += 1
            now = time.monotonic()
            if self.say and (epoch == epochs or now - self.last >= PROGRESS_SECONDS):
                self.last = now
                rate = (now - self.started) / self.done_epochs
                left = max(0, self.total_epochs - self.done_epochs) * rate
                self.say(f"{stage} run {index}/{self.runs_total}: trial {trial.number}, seed {seed}, epoch {epoch}/{epochs}, "
                         f"value {value:.4f}, about {duration(left)} left")
            return False

        return on_epoch


__all__ = ["Candidate", "FinalResult", "SEEDS", "TOP_K", "final_model", "final_seeds", "fit_final", "pick_winner",
           "top_candidates", "trial_recipe"]
