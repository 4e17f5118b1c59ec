"""What a running search shows: a bar, one line per finished trial, and the closing table.

Without a terminal (a log file, ``nohup``, a batch job) there is no bar; a
progress line (trials finished, best so far, time in, time left) then follows a
finished trial at most once a minute, so a log shows how far a long search is.
The table is computed as a DataFrame (:func:`top_trials`) apart from its printing,
so the report can reuse it and tests can check it without reading text.
"""

from __future__ import annotations

import shlex
import sys
import time
from typing import IO, Any, Callable

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from nas.core.clock import duration
from nas.core.scripts import script_command
from nas.search.config import METRICS, SearchConfig, probe_of
from nas.search.failures import NOT_THE_CANDIDATES
from nas.search.pareto import pareto_mask
from nas.search.record import BEST_VAL, PROBES, REASON, SUMMARY, TEST, recorded

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULT_RESULTS = SearchConfig.results_dir
LOG_EVERY_SECONDS = 60.0  # without a bar, at most one progress line this often


def metric_of(trial: FrozenTrial) -> float | None:
    """The task metric of a trial's best epoch; for several objectives ``trial.value`` does not exist."""
    return trial.user_attrs.get(BEST_VAL)


def best_value(trials: list[FrozenTrial], larger_is_better: bool) -> float | None:
    values = [metric_of(t) for t in trials if t.state == TrialState.COMPLETE and metric_of(t) is not None]
    if not values:
        return None
    return max(values) if larger_is_better else min(values)


def trial_line(trial: FrozenTrial) -> str:
    """``#12   COMPLETE val=0.9613 test=0.9499   3.1s  2x dot/h4 | d=64 ...``; with probe objectives each probe's
    validation score and training seconds come before the summary."""
    attrs = trial.user_attrs
    state = trial.state.name
    if trial.state == TrialState.FAIL:
        outcome = f"reason: {attrs.get(REASON, 'unknown')}"
    else:
        val, test = attrs.get(BEST_VAL), attrs.get(TEST)
        outcome = f"val={_num(val)} test={_num(test)}"
        if trial.state == TrialState.PRUNED:
            outcome += f" after {recorded(trial, 'epochs') or 0} ep"
    seconds = recorded(trial, "train_seconds")
    took = f"{seconds:6.1f}s" if seconds is not None else "     - "
    probes = "".join(f"{name}={_num(score['val'])} ({score['seconds']:.0f}s)  "
                     for name, score in attrs.get(PROBES, {}).items())
    return f"#{trial.number:<4} {state:<8} {outcome:<38} {took}  {probes}{attrs.get('summary', '')}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def status_line(trials: list[FrozenTrial], total: int, larger_is_better: bool, elapsed: float, finished_before: int,
                deadline_left: float | None = None) -> str:
    """``progress: 37 of 200 trials finished (21 pruned, 1 failed); best val 0.9917 (trial 95); 4 min 12 s in,
    about 18 min 03 s left``. Time left is this run's pace over the trials it still lacks or, where sooner, the
    time to ``--timeout`` (no trial starts after it; the last one may run past it).
    Failed counts the candidates that failed, not trials the search itself stopped (``interrupted``, ``surplus``)."""
    finished = sum(t.state in FINISHED for t in trials)
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    failed = sum(t.state == TrialState.FAIL and t.user_attrs.get(REASON) not in NOT_THE_CANDIDATES for t in trials)
    line = f"progress: {finished} of {total} trials finished ({pruned} pruned, {failed} failed)"
    best = best_value(trials, larger_is_better)
    if best is not None:
        number = next(t.number for t in trials if t.state == TrialState.COMPLETE and metric_of(t) == best)
        line += f"; best val {best:.4f} (trial {number})"
    line += f"; {duration(elapsed)} in"
    done_here = finished - finished_before
    left = elapsed / done_here * max(0, total - finished) if done_here > 0 else None
    if deadline_left is not None and (left is None or deadline_left < left):
        return line + f", {duration(deadline_left)} to --timeout (no trial starts after it)"
    return line + (f", about {duration(left)} left" if left is not None else "")


class Progress:
    """Optuna callback: prints a line per finished trial and advances a bar of finished trials.

    The bar (trials finished of the total, best so far, elapsed, time left) is
    drawn only on a terminal and unless ``bar`` is False (a worker of several); lines go to ``out`` unless ``quiet``.
    Where no bar is drawn, :func:`status_line` follows a trial at most every ``log_every`` seconds (None: never,
    as in a spawned worker, whose first worker already speaks for the study); ``deadline`` is ``--timeout``'s end
    on ``clock``.
    """

    def __init__(self, total: int, trials: list[FrozenTrial], larger_is_better: bool, quiet: bool = False,
                 out: IO[str] | None = None, bar: bool = True, log_every: float | None = LOG_EVERY_SECONDS,
                 deadline: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.out = out or sys.stdout
        self.quiet = quiet
        self.larger_is_better = larger_is_better
        self.best = best_value(trials, larger_is_better)
        self.total, self.deadline, self.clock = total, deadline, clock
        self.started, self.logged = clock(), None
        done = sum(t.state in FINISHED for t in trials)
        self.finished_before = done
        # No bar, no tqdm: its lock is a multiprocessing semaphore, which a worker ending with os._exit would leak.
        drawn = bar and not quiet and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=done, unit="trial", desc="trials", dynamic_ncols=True,
                        file=sys.stderr) if drawn else None
        self.log_every = None if quiet or drawn else log_every
        self._show_best()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.quiet:
            if self.bar is None:
                print(trial_line(trial), file=self.out)
            else:
                self.bar.write(trial_line(trial), file=self.out)
        value = metric_of(trial)
        if trial.state == TrialState.COMPLETE and value is not None:
            improved = self.best is None or (value > self.best if self.larger_is_better else value < self.best)
            self.best = value if improved else self.best
        if trial.state in FINISHED and self.bar is not None:
            self.bar.update(1)
        self._show_best()
        self._log_status(study)

    def _log_status(self, study: optuna.Study) -> None:
        now = self.clock()
        if self.log_every is None or (self.logged is not None and now - self.logged < self.log_every):
            return
        self.logged = now
        deadline_left = None if self.deadline is None else max(0.0, self.deadline - now)
        print(status_line(study.get_trials(deepcopy=False), self.total, self.larger_is_better, now - self.started,
                          self.finished_before, deadline_left), file=self.out)

    def _show_best(self) -> None:
        if self.best is not None and self.bar is not None:
            self.bar.set_postfix_str(f"best={self.best:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def top_trials(trials: list[FrozenTrial], larger_is_better: bool, k: int = 5) -> pd.DataFrame:
    """The ``k`` best complete trials, best first: number, validation and test metric, cost, summary."""
    rows = [
        {
            "trial": t.number,
            "val": metric_of(t),
            "test": t.user_attrs.get(TEST),
            "epochs": recorded(t, "epochs"),
            "params": t.user_attrs.get("params"),
            "seconds": recorded(t, "train_seconds"),
            "architecture": t.user_attrs.get(SUMMARY),
        }
        for t in trials
        if t.state == TrialState.COMPLETE and metric_of(t) is not None
    ]
    table = pd.DataFrame(rows, columns=["trial", "val", "test", "epochs", "params", "seconds", "architecture"])
    return table.sort_values(["val", "trial"], ascending=[not larger_is_better, True]).head(k).reset_index(drop=True)


def pareto_front(trials: list[FrozenTrial], objectives: tuple[str, ...], maximize: list[bool]) -> pd.DataFrame:
    """Complete trials no other dominates, most accurate first: number, one column per objective, test, summary."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    keep = pareto_mask([t.values for t in done], maximize) if done else []
    rows = [{"trial": t.number, **dict(zip(objectives, t.values)), "test": t.user_attrs.get("test"),
             "architecture": t.user_attrs.get("summary")} for t, kept in zip(done, keep) if kept]
    table = pd.DataFrame(rows, columns=["trial", *objectives, "test", "architecture"])
    metric = next(i for i, name in enumerate(objectives) if name in METRICS)
    return table.sort_values([objectives[metric], "trial"], ascending=[not maximize[metric], True]).reset_index(drop=True)


def print_summary(trials: list[FrozenTrial], larger_is_better: bool, study_name: str, storage: str,
                  out: IO[str] | None = None, objectives: tuple[str, ...] = (), directions: list[bool] = (),
                  results_dir: str = DEFAULT_RESULTS) -> None:
    """The top five (or, for several ``objectives``, the Pareto front) as a table, then the commands that
    report and export the study; they name ``results_dir`` where it is not the default, since the search's
    kept weights and data cache are there."""
    out = out or sys.stdout
    multi = len(objectives) > 1
    table = pareto_front(trials, objectives, list(directions)) if multi else top_trials(trials, larger_is_better)
    if table.empty:
        print("no trial has completed yet", file=out)
    else:
        finished = sum(t.state in FINISHED for t in trials)
        title = (f"Pareto front over {', '.join(objectives)}: {len(table)} of {finished} finished trials" if multi
                 else f"top {len(table)} of {finished} finished trials")
        with pd.option_context("display.max_colwidth", 90, "display.width", 200):
            print(f"\n{title}:", file=out)
            formats = {"val": _num, "test": _num, "accuracy": _num, "seconds": lambda v: "-" if v is None else f"{v:.1f}",
                       "params": lambda v: f"{v:,.0f}", "flops": lambda v: f"{v:,.0f}", "latency": lambda v: f"{v:.3f}ms",
                       **{name: _num for name in objectives if probe_of(name) is not None}}
            print(table.to_string(index=False, formatters=formats), file=out)
    where = shlex.join(["--study", study_name, "--storage", storage]
                       + (["--results", results_dir] if results_dir != DEFAULT_RESULTS else []))
    print(f"\nreport: {script_command('report.py')} {where}\nexport: {script_command('export.py')} {where}", file=out)
