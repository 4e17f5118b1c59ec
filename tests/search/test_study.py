"""The search in-process on the tiny space: totals, resume, refusal, records, determinism, pruning."""

from __future__ import annotations

import io
import re
import shutil

import optuna
import pytest
from optuna.trial import TrialState

from nas.search.record import result_of
from nas.models.model import build_model
from nas.search.space import SPACES_DIR
from nas.models.spec import ArchSpec
from nas.search.config import SearchConfig
from nas.search.study import StudyError
from nas.search.run import run_search
from nas.data import load_task
from nas.training.trainer import Trainer

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RECORDED = {"arch", "summary", "result", "params", "flops", "latency_ms", "best_val", "test"}
RESULT_KEYS = {"train", "seed", "device", "val_history", "best_epoch", "epochs", "train_seconds"}


def search(tmp_path, **changes):
    settings = {"space": "tiny", "trials": 3, "max_epochs": 3, "results_dir": str(tmp_path), "quiet": True, **changes}
    out = io.StringIO()
    outcome = run_search(SearchConfig(**settings), out=out)
    return outcome, out.getvalue()


def stored(outcome) -> optuna.Study:
    return optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)


def snapshot(trials) -> list[tuple]:
    return [(t.number, t.state, t.params, t.value, t.user_attrs.get("val_history"), t.user_attrs.get("arch"))
            for t in trials]


def test_same_seed_gives_the_same_candidates_in_the_same_order_with_the_same_values(tmp_path):
    first, _ = search(tmp_path / "a", trials=5, max_epochs=2)
    second, _ = search(tmp_path / "b", trials=5, max_epochs=2)
    other, _ = search(tmp_path / "c", trials=2, max_epochs=1, seed=1)
    assert snapshot(stored(first).trials) == snapshot(stored(second).trials)
    assert len(stored(first).trials) == 5
    assert [t.params for t in stored(first).trials[:2]] != [t.params for t in stored(other).trials]


def test_trials_is_the_total_so_a_rerun_runs_only_what_is_missing(tmp_path):
    outcome, text = search(tmp_path)
    assert outcome.status == "done" and outcome.finished == 3
    before = snapshot(stored(outcome).trials)

    again, text = search(tmp_path)
    assert again.status == "already_done" and "already has 3 finished trials" in text
    assert snapshot(stored(again).trials) == before

    more, _ = search(tmp_path, trials=5)
    trials = stored(more).trials
    assert more.finished == 5 and sum(t.state in FINISHED for t in trials) == 5
    assert snapshot(trials[:3]) == before


def test_every_trial_records_what_report_and_export_need(tmp_path):
    outcome, text = search(tmp_path, trials=6, max_epochs=4)
    study = stored(outcome)
    assert study.user_attrs["task"] == "digits" and study.user_attrs["space"] == "tiny"
    assert study.user_attrs["seed"] == 0 and len(study.user_attrs["space_hash"]) == 16
    input_spec = load_task("digits").input_spec
    for trial in study.trials:
        attrs = trial.user_attrs
        result = result_of(trial)
        assert RECORDED <= set(attrs), RECORDED - set(attrs)
        assert RESULT_KEYS <= set(result), RESULT_KEYS - set(result)
        spec = ArchSpec.from_json(attrs["arch"])
        assert spec.summary() == attrs["summary"] and spec.to_json() == attrs["arch"]
        assert attrs["params"] == sum(p.numel() for p in build_model(spec, input_spec).parameters())
        assert attrs["flops"] > 0 and attrs["latency_ms"] > 0 and result["device"] == "cpu"
        assert len(result["val_history"]) == result["epochs"] and attrs["best_val"] == max(result["val_history"])
        assert 0 <= attrs["test"] <= 1
        if trial.state == TrialState.COMPLETE:
            assert trial.value == attrs["best_val"] and result["epochs"] == 4
        else:
            assert attrs["reason"].startswith("pruned after epoch") and result["epochs"] < 4
    assert "top " in text and "scripts/report.py --study digits-tiny" in text


def test_hyperband_prunes_trials_early(tmp_path):
    outcome, _ = search(tmp_path, trials=8, max_epochs=4)
    epochs = [result_of(t)["epochs"] for t in stored(outcome).trials if t.state == TrialState.PRUNED]
    assert epochs and max(epochs) < 4


def copy_tiny(folder, change: str = ""):
    folder.mkdir()
    path = folder / "tiny.yaml"
    shutil.copy(SPACES_DIR / "tiny.yaml", path)
    if change:
        path.write_text(path.read_text().replace("d_model: [8, 16]", change))
    return str(path)


def test_resume_with_another_space_or_seed_is_refused_and_leaves_the_study_alone(tmp_path):
    outcome, _ = search(tmp_path, trials=2, study="s")
    before = (snapshot(stored(outcome).trials), stored(outcome).user_attrs)
    changed = copy_tiny(tmp_path / "changed", "d_model: [8, 16, 32]")
    with pytest.raises(StudyError, match=r"study 's' was made with search space 'tiny'.*--allow-space-change"):
        search(tmp_path, trials=4, study="s", space=changed)
    with pytest.raises(StudyError, match=r"study 's' was made with seed=0, not 1; rerun with --seed 0"):
        search(tmp_path, trials=4, study="s", seed=1)
    assert (snapshot(stored(outcome).trials), stored(outcome).user_attrs) == before

    unchanged, _ = search(tmp_path, trials=3, study="s", space=copy_tiny(tmp_path / "copy"))  # same choices, other file
    assert unchanged.finished == 3
    allowed, _ = search(tmp_path, trials=4, study="s", space=changed, allow_space_change=True)
    assert allowed.finished == 4 and stored(allowed).user_attrs["space_hash"] != before[1]["space_hash"]
    assert "d_model@[8,16,32]" in stored(allowed).trials[-1].params  # a changed choice is a new parameter
    assert stored(allowed).user_attrs["space_origin"] == before[1]["space_origin"]


def test_a_broken_setup_stops_when_most_recent_trials_fail(tmp_path, monkeypatch):
    def broken(self, model, config, **hooks):
        raise RuntimeError("out of memory\ndetails")

    monkeypatch.setattr("nas.training.trainer.Trainer.fit", broken)
    outcome, text = search(tmp_path, trials=5)
    trials = stored(outcome).trials
    assert outcome.status == "failing" and outcome.finished == 0
    assert [t.state for t in trials] == [TrialState.FAIL] * 10
    assert trials[0].user_attrs["reason"] == "RuntimeError: out of memory"
    assert "10 or more of the last 20 trials failed, so something is systematically wrong" in text
    assert "last reason: RuntimeError: out of memory" in text


def test_a_candidate_that_crashes_fails_alone_with_its_traceback_and_the_study_goes_on(tmp_path, monkeypatch):
    real_fit = Trainer.fit

    def fails_once(self, model, config, **hooks):
        if not fails_once.failed:
            fails_once.failed = True
            raise ValueError("bad candidate\ndetails")
        return real_fit(self, model, config, **hooks)

    fails_once.failed = False
    monkeypatch.setattr("nas.training.trainer.Trainer.fit", fails_once)
    outcome, _ = search(tmp_path, trials=2, max_epochs=1)
    trials = stored(outcome).trials
    assert outcome.status == "done" and outcome.finished == 2
    assert trials[0].state == TrialState.FAIL and all(t.state in FINISHED for t in trials[1:])
    assert trials[0].user_attrs["reason"] == "ValueError: bad candidate"
    assert 'raise ValueError("bad candidate' in result_of(trials[0])["traceback"]


@pytest.mark.parametrize("changes,message", [
    ({"trials": 0}, r"trials=0 must be an integer >= 1"),
    ({"sampler": "cmaes"}, r"sampler='cmaes' is unknown; allowed: tpe, random, gp, nsga2"),
    ({"pruner": "asha"}, r"pruner='asha' is unknown; allowed: hyperband, median, none"),
    ({"timeout": -1.0}, r"timeout=-1.0 must be a number of seconds > 0"),
])
def test_config_mistakes_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**changes)


@pytest.mark.parametrize("sampler", ["random", "gp", "nsga2"])
def test_every_sampler_runs(tmp_path, sampler):
    outcome, _ = search(tmp_path, trials=2, max_epochs=1, sampler=sampler, pruner="none")
    assert outcome.finished == 2


def test_a_duplicate_candidate_takes_the_finished_trials_result_without_training(tmp_path, monkeypatch):
    first, _ = search(tmp_path, trials=1, max_epochs=1)
    original = stored(first).trials[0]
    stored(first).enqueue_trial(original.params)  # the next candidate: the same architecture and training
    calls = []
    real_fit = Trainer.fit
    monkeypatch.setattr("nas.training.trainer.Trainer.fit", lambda *args, **kw: calls.append(1) or real_fit(*args, **kw))
    second, _ = search(tmp_path, trials=2, max_epochs=1)
    copy = stored(second).trials[1]
    assert calls == [] and second.finished == 2
    assert result_of(copy)["copied_from"] == 0 and copy.state == original.state and copy.value == original.value
    assert result_of(copy)["val_history"] == result_of(original)["val_history"]
    assert result_of(copy)["seed"] == result_of(original)["seed"]  # the seed its result was trained with


def test_a_candidate_too_large_for_the_memory_cap_is_refused_before_training(tmp_path, monkeypatch):
    calls = []
    real_fit = Trainer.fit
    monkeypatch.setattr("nas.training.trainer.Trainer.fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    outcome, _ = search(tmp_path, trials=1, max_epochs=1, memory_gb=1e-6)  # about a kilobyte
    trial = stored(outcome).trials[0]
    assert calls == [] and trial.state == TrialState.FAIL
    assert re.fullmatch(r"memory: needs ~[0-9.]+ [KM]iB to train at batch 8, 1\.0 KiB allowed", trial.user_attrs["reason"])


def test_a_candidate_over_the_cap_at_its_batch_trains_at_a_smaller_one(tmp_path):
    outcome, _ = search(tmp_path, trials=1, max_epochs=1, memory_gb=0.003)  # a few MiB: the tiny space's 128 is too many
    trial = stored(outcome).trials[0]
    result = result_of(trial)
    assert trial.state in FINISHED and result["batch_reduced_from"] == 128
    assert result["train"]["batch_size"] < 128 and result["memory_gib"] <= 0.003
