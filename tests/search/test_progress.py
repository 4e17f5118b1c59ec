"""What a search writes to a log with no terminal: a progress line with trials, best so far and time left."""

from __future__ import annotations

import io

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.search.progress import Progress, status_line
from nas.search.record import BEST_VAL, REASON


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add(study: optuna.Study, state: TrialState, val: float | None = None, reason: str | None = None):
    attrs = {} if val is None else {BEST_VAL: val}
    if reason is not None:
        attrs[REASON] = reason
    study.add_trial(create_trial(state=state, value=val if state == TrialState.COMPLETE else None, user_attrs=attrs))
    return study.get_trials(deepcopy=False)[-1]


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize")


def progress_lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if line.startswith("progress:")]


def test_a_log_gets_a_progress_line_after_the_first_trial_then_at_most_once_a_minute(study):
    clock, out = Clock(), io.StringIO()
    progress = Progress(10, [], larger_is_better=True, out=out, clock=clock)
    clock.now += 30
    progress(study, add(study, TrialState.COMPLETE, 0.9))
    clock.now += 30
    progress(study, add(study, TrialState.PRUNED, 0.5))
    clock.now += 30
    progress(study, add(study, TrialState.COMPLETE, 0.95))
    assert progress_lines(out) == [
        "progress: 1 of 10 trials finished (0 pruned, 0 failed); best val 0.9000 (trial 0); 30 s in, about 4 min 30 s left",
        "progress: 3 of 10 trials finished (1 pruned, 0 failed); best val 0.9500 (trial 2); 1 min 30 s in, "
        "about 3 min 30 s left",
    ]
    assert sum(line.startswith("#") for line in out.getvalue().splitlines()) == 3  # every trial keeps its line


def test_time_left_is_this_runs_pace_and_a_timeout_caps_it(study):
    for _ in range(5):  # finished before this run resumed the study: they say nothing of its pace
        add(study, TrialState.COMPLETE, 0.8)
    clock, out = Clock(), io.StringIO()
    progress = Progress(10, study.get_trials(), larger_is_better=True, out=out, clock=clock, deadline=clock.now + 7200)
    clock.now += 600
    progress(study, add(study, TrialState.FAIL))
    clock.now += 600
    progress(study, add(study, TrialState.COMPLETE, 0.7))
    assert progress_lines(out) == [
        "progress: 5 of 10 trials finished (0 pruned, 1 failed); best val 0.8000 (trial 0); 10 min 00 s in, "
        "1 h 50 min to --timeout (no trial starts after it)",  # no trial of this run has finished: no pace yet
        "progress: 6 of 10 trials finished (0 pruned, 1 failed); best val 0.8000 (trial 0); 20 min 00 s in, "
        "about 1 h 20 min left",
    ]
    line = status_line(study.get_trials(), 10, True, elapsed=1200, finished_before=5, deadline_left=900)
    assert line.endswith("20 min 00 s in, 15 min 00 s to --timeout (no trial starts after it)")


def test_trials_the_search_itself_stopped_are_not_counted_as_failed(study):
    add(study, TrialState.COMPLETE, 0.9)
    add(study, TrialState.FAIL, reason="surplus")  # claimed past the total by a worker of several
    add(study, TrialState.FAIL, reason="interrupted")
    add(study, TrialState.FAIL, reason="memory: needs ~30 GiB")
    line = status_line(study.get_trials(), 10, True, elapsed=60, finished_before=0)
    assert line.startswith("progress: 1 of 10 trials finished (0 pruned, 1 failed)")


@pytest.mark.parametrize("settings", [{"quiet": True}, {"log_every": None}], ids=["quiet", "spawned-worker"])
def test_no_progress_line_when_quiet_or_for_a_spawned_worker(study, settings):
    out = io.StringIO()
    progress = Progress(10, [], larger_is_better=True, out=out, **settings)
    progress(study, add(study, TrialState.COMPLETE, 0.9))
    assert progress_lines(out) == []
