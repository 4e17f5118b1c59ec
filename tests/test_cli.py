"""The command line: Ctrl-C and resume end to end, --help, and one clear line for every bad input."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.cli import benchmark_main, report_main, search_main

ROOT = Path(__file__).resolve().parent.parent
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def load(url: str, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=url).get_trials()
    except KeyError:  # not created yet
        return []


def finished_record(trials) -> dict[int, tuple]:
    return {t.number: (t.state, t.params, t.value, t.user_attrs) for t in trials if t.state in FINISHED}


def interrupt_mid_trial(command: list[str], url: str, signum: int, running: int = 1) -> tuple[dict, str]:
    """Start the search, send ``signum`` once a trial has finished and ``running`` more are training; the finished
    trials' record before the signal and the search's stderr. It must exit 130."""
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = load(url)
        if any(t.state in FINISHED for t in trials) and sum(
                t.state == TrialState.RUNNING and "arch" in t.user_attrs for t in trials) >= running:
            break
        time.sleep(0.2)
    else:
        child.kill()
        pytest.fail(f"no trial finished with {running} more training within 120 s")
    time.sleep(0.3)
    before = finished_record(load(url))
    child.send_signal(signum)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    return before, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_mid_trial_then_rerun_ends_with_exactly_the_requested_trials(tmp_path, signum):
    """Ctrl-C, or the SIGTERM that ``kill``, ``timeout`` and schedulers send, records the trial in hand as
    interrupted (not left RUNNING) and keeps every finished one; the rerun runs only what is missing."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    command = [sys.executable, "scripts/search.py", "--space", "tiny", "--trials", "4", "--storage", url,
               "--study", "s", "--max-epochs", "30", "--pruner", "none", "--results", str(tmp_path)]
    before, err = interrupt_mid_trial(command, url, signum)
    assert "resume with: " in err and "--trials 4" in err
    trials = load(url)
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["reason"] for t in interrupted] == ["interrupted"]
    assert finished_record(trials) == before

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(url)
    assert sum(t.state in FINISHED for t in trials) == 4
    after = finished_record(trials)
    assert {n: after[n] for n in before} == before


def test_sigterm_to_a_many_worker_search_stops_every_worker_and_records_their_trials(tmp_path):
    """A scheduler signals the command's process only; its workers must stop too, not train on to the end."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    command = [sys.executable, "scripts/search.py", "--space", "tiny", "--trials", "40", "--storage", url,
               "--study", "s", "--max-epochs", "30", "--pruner", "none", "--results", str(tmp_path), "--jobs", "2"]
    before, _ = interrupt_mid_trial(command, url, signal.SIGTERM, running=2)
    trials = load(url)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert {t.user_attrs.get("reason") for t in trials if t.state == TrialState.FAIL} == {"interrupted"}
    assert sum(t.state == TrialState.FAIL for t in trials) >= 2
    assert sum(t.state in FINISHED for t in trials) < 40
    assert {n: r for n, r in finished_record(trials).items() if n in before} == before


def test_help_lists_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit) as done:
        search_main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--trials", "--task", "--space", "--study", "--storage", "--sampler", "--pruner", "--max-epochs",
                 "--timeout", "--trial-timeout", "--seed", "--device", "--allow-space-change", "--quiet",
                 "--min-examples", "--folds", "--cv-below"):
        assert flag in text
    for default in ("(default: 200)", "(default: digits)", "(default: default)", "(default: tpe)",
                    "(default: hyperband)", "(default: 25000)", "(default: 5)", "(default: 1000)", "(default: 0)", "(default: auto)",
                    "sqlite:///results/<study>.db", "default, example, timeseries, tiny"):
        assert default in text, default


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    """A finished two-trial study, and the base arguments that point at it."""
    folder = tmp_path_factory.mktemp("existing")
    url = f"sqlite:///{folder / 's.db'}"
    base = ["--space", "tiny", "--storage", url, "--study", "s", "--max-epochs", "2", "--results", str(folder), "--quiet"]
    assert search_main(base + ["--trials", "2"]) == 0
    return folder, base


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``search.py argv``, whether it returns or argparse exits."""
    try:
        code = search_main(argv)
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


SPACE_TEXT = "space file:"  # marks an argument to be written to a file and passed as --space PATH
BAD = {
    "zero trials": (["--trials", "0"], r"argument --trials: '0' must be an integer >= 1"),
    "negative trials": (["--trials", "-3"], r"'-3' must be an integer >= 1"),
    "unknown task": (["--task", "digitz"], r"unknown task 'digitz'; did you mean 'digits'"),
    "unknown space": (["--space", "tinny"], r"search space 'tinny' is neither a file nor a name"),
    "unknown sampler": (["--sampler", "cmaes"], r"argument --sampler: invalid choice: 'cmaes'"),
    "unknown pruner": (["--pruner", "asha"], r"argument --pruner: invalid choice: 'asha'"),
    "unknown device": (["--device", "tpu"], r"device='tpu' is not"),
    "bad storage url": (["--storage", "nosuchdb://x/y"],
                        r"storage 'nosuchdb://x/y' has an unknown scheme 'nosuchdb'; allowed: sqlite:///PATH, "
                        r"postgresql://USER@HOST/DB, mysql://USER@HOST/DB, journal:PATH, grpc://HOST:PORT"),
    "unwritable journal": (["--storage", "journal:/proc/nosuch/s.log"],
                           r"storage 'journal:/proc/nosuch/s.log': cannot create folder '/proc/nosuch'"),
    "unknown space key": (["--space", SPACE_TEXT + "model: {d_modle: 8}"], r"unknown key\(s\) \['model.d_modle'\]"),
    "low above high": (["--space", SPACE_TEXT + "train: {lr: {low: 0.1, high: 0.01}}"], r"`low <= high` must hold"),
    "log from zero": (["--space", SPACE_TEXT + "train: {weight_decay: {low: 0, high: 0.1, log: true}}"],
                      r"log range needs low > 0"),
    "space changed": (["--space", SPACE_TEXT + "model: {d_model: 8}"], r"resume with the original space"),
    "bad portfolio entry": (["--space", SPACE_TEXT + "portfolio: {big: {model: {d_model: 128}}}"],
                            r"portfolio entry 'big' is not a valid architecture: model.d_model=128 is not offered "
                            r"here; allowed: 64"),
}
if not torch.cuda.is_available():
    BAD["cuda absent"] = (["--device", "cuda"], r"device='cuda' asked for CUDA, but no CUDA device is available")


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_the_study_untouched(existing, capsys, case):
    folder, base = existing
    args, message = BAD[case]
    if args[1].startswith(SPACE_TEXT):
        space = folder / "tiny.yaml"  # same name as the study's space, other choices
        space.write_text(args[1][len(SPACE_TEXT):])
        args = [args[0], str(space)]
    before = digest(folder / "s.db")
    code, err = run(base + ["--trials", "3"] + args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("search.py: error: "), err
    assert re.search(message, err), err
    assert digest(folder / "s.db") == before


def test_unwritable_storage_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = search_main(["--space", "tiny", "--trials", "1", "--storage", f"sqlite:///{blocker}/sub/s.db"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot create folder" in err


def test_rerunning_a_finished_study_says_so_and_exits_0(existing, capsys):
    folder, base = existing
    before = digest(folder / "s.db")
    assert search_main(base + ["--trials", "2"]) == 0
    assert "already has 2 finished trials" in capsys.readouterr().out
    assert digest(folder / "s.db") == before


def test_the_printed_report_command_finds_a_search_kept_in_another_results_folder(tmp_path, monkeypatch, capsys):
    """A search told ``--results runs`` prints report and export commands that name it: without it they would
    look in ./results, away from the search's kept weights and data cache."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    assert search_main(["--space", "tiny", "--max-epochs", "2", "--trials", "2", "--results", str(runs), "--quiet"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines()
                   if line.startswith(("report: ", "export: ")))
    report_args = shlex.split(printed["report"])[2:]
    assert shlex.split(printed["export"])[2:] == report_args
    assert report_main(report_args) == 0
    assert (runs / "digits-tiny" / "report.md").is_file()
    assert not (tmp_path / "results").exists()


def test_scripts_run_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for script in ("search.py", "benchmark.py", "predict.py"):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_benchmark_unknown_suite_is_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        benchmark_main(["nosuch"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'nosuch'" in err


SMALL = "n_train=64,n_val=32,n_test=32,seq_len=16"
MAD_TASKS = {"in_context_recall": SMALL, "fuzzy_recall": SMALL, "noisy_recall": SMALL,
             "selective_copy": SMALL + ",to_copy=4", "compression": SMALL, "memorization": SMALL}


@pytest.mark.parametrize("probe", MAD_TASKS)
def test_a_one_trial_search_runs_on_each_mad_probe(probe, tmp_path):
    name = f"mad:{probe}:{MAD_TASKS[probe]}"
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert search_main(["--task", name, "--trials", "1", "--max-epochs", "2", "--study", "s", "--storage", url,
                        "--results", str(tmp_path), "--device", "cpu"]) == 0
    (trial,) = load(url)
    assert trial.state == TrialState.COMPLETE and 0 <= trial.value <= 1


def test_an_unknown_mad_probe_lists_the_six(tmp_path, capsys):
    assert search_main(["--task", "mad:recall", "--trials", "1", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in_context_recall, fuzzy_recall, noisy_recall, selective_copy, compression, " \
                                    "memorization" in err
