"""Argument parsing for the scripts, and nothing else: each ``*_main`` parses, calls the library, prints.

A user mistake ends as one line, ``<prog>: error: <what and what is allowed>``,
and exit status 2; Ctrl-C or SIGTERM during a search exits 130 after saying how to resume.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Errors on one line (no usage dump), pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")




class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default, except ``None`` and ``False`` ones, whose help already says what happens."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= {minimum}")
        return value

    return parse


_positive_int, _seed = _int_at_least(1), _int_at_least(0)  # a seed is what numpy and Optuna's samplers accept


def _positive_number(unit: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be a number of {unit} > 0")
        return value

    return parse


_seconds, _minutes = _positive_number("seconds"), _positive_number("minutes")


def _device_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no device; give e.g. 0,1 or cuda:0,cuda:1 or cpu")
    return names


def _search_parser() -> argparse.ArgumentParser:
    from nas.search.space import space_names
    from nas.search.config import OBJECTIVES, PRUNERS, SAMPLERS, SearchConfig
    from nas.data import task_families

    d = SearchConfig()
    parser = _Parser(
        prog="search.py",
        description="Search composite attention models for a task with Optuna. --trials is the study's total of "
                    "finished trials: rerun the same command to resume after Ctrl-C or a crash.",
        formatter_class=_DefaultsFormatter,
    )
    parser.add_argument("--trials", type=_positive_int, default=d.trials,
                        help="finished (complete + pruned) trials the study should hold")
    parser.add_argument("--task", default=d.task, help=f"task to search on; one of {', '.join(task_families())}")
    parser.add_argument("--space", default=d.space,
                        help=f"search space: a name in search_spaces/ ({', '.join(space_names())}) or a YAML path")
    parser.add_argument("--study", default=None, help="study name (default: <task>-<space>)")
    parser.add_argument("--storage", default=None,
                        help="storage URL, SQLite or PostgreSQL, e.g. postgresql://user@host/db "
                             "(default: sqlite:///results/<study>.db)")
    parser.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                        help="tpe: multivariate TPE over grouped conditional parameters")
    parser.add_argument("--pruner", choices=PRUNERS, default=d.pruner,
                        help="hyperband: resource = epochs, from about 1/27 of the largest budget (or the epoch by "
                             "which a recall task's plateau of optimiser steps is behind) to all of it")
    parser.add_argument("--objectives", type=lambda text: tuple(filter(None, text.split(","))), default=None,
                        help=f"several objectives, e.g. accuracy,params or accuracy,probe:in_context_recall: the task "
                             f"metric, costs to minimise and MAD probe skills to maximise, of {', '.join(OBJECTIVES)}; "
                             f"a probe trains each complete candidate's blocks on the probe at the profile's CPU size "
                             f"(seconds to a minute a probe). The search then finds a Pareto front and prunes on the "
                             f"metric's learning curve (default: the task metric alone)")
    parser.add_argument("--max-epochs", type=_positive_int, default=d.max_epochs,
                        help="epochs per trial at most (default: scaled to the data, so that every candidate may see "
                             "--min-examples training examples, and at least 8)")
    parser.add_argument("--min-examples", type=_positive_int, default=d.min_examples,
                        help="training examples every candidate may see at least: small sets get more epochs")
    parser.add_argument("--folds", type=int, default=d.folds,
                        help="k of the stratified k-fold cross-validation that scores a task with fewer than "
                             "--cv-below non-test samples (train + validation pooled; the test split is never used)")
    parser.add_argument("--cv-below", type=int, default=d.cv_below,
                        help="cross-validate tasks with fewer non-test samples than this; 0: never (a file task "
                             "with its own X_val is never cross-validated)")
    parser.add_argument("--timeout", type=_seconds, default=None,
                        help="seconds for the whole run: no trial starts after it (default: none)")
    parser.add_argument("--trial-timeout", type=_seconds, default=d.trial_timeout,
                        help="seconds of training per trial; its best epoch so far stands")
    parser.add_argument("--memory-gb", type=_positive_number("GiB"), default=None,
                        help="memory one trial may use; a candidate that needs more trains at a smaller batch, or "
                             "fails alone with reason 'memory' (default: 80%% of what the device has free, per worker)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seeds the data split, the sampler and every trial")
    parser.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--jobs", type=_positive_int, default=d.jobs,
                        help="worker processes on the one storage; for many machines run the same command on each "
                             "with one --storage postgresql://...")
    parser.add_argument("--devices", type=_device_list, default=None,
                        help="devices the workers spread over, e.g. 0,1 (CUDA indices) or cpu; several workers may "
                             "share one (default: every CUDA device with --device auto, else --device)")
    parser.add_argument("--allow-space-change", action="store_true",
                        help="resume a study with a search space other than the one it was made with")
    parser.add_argument("--no-portfolio", action="store_true",
                        help="a new study starts with sampled candidates, not the space's portfolio of known-good ones")
    parser.add_argument("--results", default=d.results_dir, help="folder for the default storage and data cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no line per trial")
    return parser


def search_main(argv: list[str] | None = None) -> int:
    """``scripts/search.py``: run or resume a search; returns the exit status."""
    from nas.search.config import SearchConfig
    from nas.search.run import run_search

    args = _search_parser().parse_args(argv)
    resume = f"python {sys.argv[0] if argv is None else 'scripts/search.py'} " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    try:
        config = SearchConfig(
            trials=args.trials, task=args.task, space=args.space, study=args.study, storage=args.storage,
            sampler=args.sampler, pruner=args.pruner, max_epochs=args.max_epochs, timeout=args.timeout,
            trial_timeout=args.trial_timeout, memory_gb=args.memory_gb, seed=args.seed, device=args.device,
            allow_space_change=args.allow_space_change, quiet=args.quiet, results_dir=args.results,
            jobs=args.jobs, devices=args.devices, objectives=args.objectives or (), portfolio=not args.no_portfolio,
            min_examples=args.min_examples, folds=args.folds, cv_below=args.cv_below,
        )
        outcome = run_search(config)
    except ValueError as err:
        print(f"search.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted before the search started; nothing was recorded. Run again: {resume}", file=sys.stderr)
        return INTERRUPTED
    if outcome.status == "interrupted":
        print(f"\ninterrupted: {outcome.finished} of {outcome.trials} trials finished and kept in {outcome.storage}; "
              f"resume with: {resume}", file=sys.stderr)
        return INTERRUPTED
    return 1 if outcome.status == "failing" else 0


def benchmark_main(argv: list[str] | None = None) -> int:
    """``scripts/benchmark.py SUITE``: run a benchmark suite, write its CSV and plot, print its table."""
    from benchmarks import run_suite, suite_names

    parser = _Parser(prog="benchmark.py", description="Run a benchmark suite; it writes CSV and PNG under --out.",
                     formatter_class=_DefaultsFormatter)
    parser.add_argument("suite", choices=suite_names(), help="the suite to run")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"), help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run with fewer sizes")
    budget = parser.add_argument_group("budget (search suites; the suite's own default when not given)")
    budget.add_argument("--trials", type=_positive_int, default=None, help="trials per search")
    budget.add_argument("--seeds", type=_positive_int, default=None, help="repeats with different seeds")
    budget.add_argument("--minutes", type=_minutes, default=None, help="wall-time limit per search")
    budget.add_argument("--seed", type=_seed, default=None,
                        help="quality: the searches' seed (data split, folds, sampler, trials), to repeat a run")
    budget.add_argument("--tasks", type=lambda text: tuple(filter(None, text.split(","))), default=None,
                        help="comma-separated task names")
    parser.add_argument("--full", action="store_true", default=None,
                        help="profile: MAD's own size (width 128, batch 128, 200 epochs, every level; a GPU's work)")
    args = parser.parse_args(argv)
    names = ("trials", "seeds", "minutes", "seed", "tasks", "full")
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    try:
        table = run_suite(args.suite, args.out, device=args.device, quick=args.quick, **options)
    except ValueError as err:
        print(f"benchmark.py: error: {err}", file=sys.stderr)
        return 2
    print(table.to_string(index=False))
    print(f"\nwritten to {args.out}")
    return 0


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", metavar="NAME", default=None,
                        help="study name (default: the only study in --storage, or the only results/*.db)")
    parser.add_argument("--storage", metavar="URL", default=None,
                        help="Optuna storage URL: sqlite:///PATH, postgresql://..., mysql://..., journal:PATH or "
                             "grpc://HOST:PORT (default: sqlite:///<results>/<study>.db)")
    parser.add_argument("--results", metavar="DIR", type=Path, default=Path("results"),
                        help="results folder: default storage, the search's kept weights, data cache, outputs "
                             "(default: results)")


def report_main(argv: list[str] | None = None) -> int:
    """``scripts/report.py``: write ``<results>/<study>/report.md`` with its PNGs and ranking.csv; print the top."""
    from nas.search.kept_weights import study_dir
    from nas.results.report import terminal_table, write_report
    from nas.results.study import open_study, resolve_study

    parser = _Parser(prog="report.py",
                     description="Rank the trials of a study, draw its plots and write report.md, from the storage alone.")
    _study_arguments(parser)
    parser.add_argument("--top", metavar="K", type=_positive_int, default=10, help="rows in the top table (default: 10)")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None, help="output folder (default: <results>/<study>)")
    args = parser.parse_args(argv)
    try:
        name, url = resolve_study(args.study, args.storage, args.results)
        study = open_study(name, url)
        out = args.out or study_dir(args.results, name)
        report = write_report(study, out, top=args.top, export_dir=study_dir(args.results, name) / "best",
                              results_dir=args.results, storage_url=url)
    except ValueError as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 2
    print(f"top {len(report.top)} of study {name!r} (metric: {study.user_attrs.get('metric', '?')}):")
    print(terminal_table(report.top))
    for note in report.notes:
        print(f"note: {note}")
    print(f"\nreport: {out / 'report.md'} ({len(report.files)} files)")
    return 0


def export_main(argv: list[str] | None = None) -> int:
    """``scripts/export.py``: write arch.json, model.safetensors, metrics.json and MODEL.md of one trial."""
    from nas.core.scripts import script_command
    from nas.search.kept_weights import study_dir
    from nas.results.export import export_trial
    from nas.results.final import SEEDS, TOP_K
    from nas.results.study import open_study, resolve_study
    from nas.search.record import scored_by_spike

    parser = _Parser(prog="export.py",
                     description="Export the final model as a folder that load_model rebuilds: by default the top "
                                 "candidates are rescored on validation and the winner retrained on train + "
                                 "validation with several seeds.")
    _study_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", metavar="N", type=int, default=None,
                       help="trial number to export (a Pareto point for multi-objective studies); the final "
                            "model then retrains only this candidate")
    which.add_argument("--best", action="store_true",
                       help="the best trial (the default; for multi-objective studies the most accurate Pareto point)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--search-weights", action="store_true",
                         help="export the weights the search kept for the trial, with no retraining")
    weights.add_argument("--retrain-epochs", metavar="E", type=_positive_int, default=None,
                         help="retrain the trial once on train + validation for exactly E epochs")
    parser.add_argument("--top-k", metavar="K", type=_positive_int, default=TOP_K,
                        help=f"final model: candidates rescored on validation, best first (default: {TOP_K})")
    parser.add_argument("--final-seeds", metavar="S", type=_positive_int, default=SEEDS,
                        help=f"final model: seeds each candidate is rescored and the winner retrained with "
                             f"(default: {SEEDS})")
    weights.add_argument("--one-seed", action="store_true",
                        help="final model: export the first seed's network alone, not the ensemble of all seeds "
                             "(their mean class probabilities; a seed's own test score is noisy on small data)")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None, help="export folder (default: <results>/<study>/best)")
    parser.add_argument("--force", action="store_true", help="replace an export already in --out")
    parser.add_argument("--device", default="auto",
                        help="auto (default), cpu, cuda, cuda:N or mps: where the test metric is measured and retraining runs")
    args = parser.parse_args(argv)
    final = not (args.search_weights or args.retrain_epochs)
    try:
        name, url = resolve_study(args.study, args.storage, args.results)
        study = open_study(name, url)
        out = args.out or study_dir(args.results, name) / "best"
        if mixed := scored_by_spike(study.get_trials(deepcopy=False)):
            print(f"note: {mixed}", flush=True)
        if final:
            kept = "the first seed" if args.one_seed or args.final_seeds == 1 else "their ensemble"
            print(f"final model: rescoring the top {args.top_k} candidates of study {name!r} on validation, "
                  f"retraining the winner on train + validation with {args.final_seeds} seeds and exporting {kept} "
                  f"(--search-weights skips this)", flush=True)
        result = export_trial(study, out, trial=args.trial, results_dir=args.results, final=final, top_k=args.top_k,
                              seeds=args.final_seeds, retrain_epochs=args.retrain_epochs, force=args.force,
                              ensemble=not args.one_seed,
                              device=args.device, storage_url=url, progress=lambda line: print(line, flush=True))
    except ValueError as err:
        print(f"export.py: error: {err}", file=sys.stderr)
        return 2
    m = result.metrics
    val = "-" if m["val"] is None else f"{m['val']:.4f}"
    print(f"exported trial {result.trial} of study {name!r} to {out}: {m['summary']}")
    if "final" in m:
        f = m["final"]
        alone = f"{f['test_mean']:.4f} ± {f['test_std']:.4f} over {len(f['seeds'])} seed{'s' * (len(f['seeds']) > 1)}"
        if m["members"] > 1:
            print(f"test {m['metric']} {m['test']:.4f} for the ensemble of {m['members']} seeds exported (one seed "
                  f"alone {alone}), {m['params']:,} parameters each")
        else:
            print(f"test {m['metric']} {alone} (the first seed exported), {m['params']:,} parameters")
        print(f"retrained {f['epochs']} epochs on {f['merged_samples']} samples")
    else:
        print(f"validation {m['metric']} {val}, test {m['metric']} {m['test']:.4f}, {m['params']:,} parameters")
    print(f"use it on raw data (as your files hold it): {script_command('predict.py')} {shlex.quote(str(out))} new.npz "
          f"--out predictions.csv, or from nas import load_predictor; load_predictor({str(out)!r}).predict(X)")
    return 0


def predict_main(argv: list[str] | None = None) -> int:
    """``scripts/predict.py``: an exported model's predictions for a file of new data, as CSV."""
    from nas.core.files import write_atomically
    from nas.models.predictor import load_predictor
    from nas.results.predictions import FORMATS, predictions_table, read_new_data, score
    from nas.training.device import resolve_device

    parser = _Parser(prog="predict.py",
                     description="Predict with an exported model on data as your files hold it (the export's "
                                 "preprocessing is applied): one CSV row per sample. Known labels are scored.")
    parser.add_argument("model", type=Path, help="export folder, e.g. results/digits-default/best")
    parser.add_argument("data", type=Path,
                        help=f"new samples, one of {', '.join(FORMATS)}: an archive with X (and y), an array X, or a "
                             f"long-format table with sample, step and the model's feature columns (and label)")
    parser.add_argument("--out", metavar="FILE", type=Path, default=None,
                        help="CSV to write (default: standard output)")
    parser.add_argument("--force", action="store_true", help="replace --out when it exists")
    parser.add_argument("--proba", action="store_true", help="add a p_<class> column per class")
    parser.add_argument("--x", metavar="NAME", default="X", help="the archive's array of samples, e.g. X_test")
    parser.add_argument("--y", metavar="NAME", default="y",
                        help="the archive's array of known labels, scored where present, e.g. y_test")
    parser.add_argument("--split", metavar="NAME", default=None,
                        help="a long-format CSV's rows of this split only, e.g. test (default: every row)")
    parser.add_argument("--device", default="cpu", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        if args.out is not None and args.out.exists() and not args.force:
            raise ValueError(f"{args.out} exists; pass --force to replace it")
        if args.out is not None and args.out.resolve() == args.data.resolve():
            raise ValueError(f"--out {args.out} is the data file itself; write the predictions elsewhere")
        predictor = load_predictor(args.model, device=device)
        table = predictions_table(predictor, read_new_data(args.data, x_key=args.x, y_key=args.y, split=args.split),
                                  proba=args.proba)
    except (ValueError, OSError) as err:  # ExportError is a ValueError
        print(f"predict.py: error: {err}", file=sys.stderr)
        return 2
    if args.out is None:
        table.to_csv(sys.stdout, index=False)
    else:
        write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))  # never half a file
    scored = score(predictor, table)
    where = "" if args.out is None else f" to {args.out}"
    known = "" if scored is None else f"; {scored[0]} {scored[1]:.4f} against the labels given"
    print(f"predicted {len(table)} samples{where}{known}", file=sys.stderr)
    return 0


def storage_proxy_main(argv: list[str] | None = None) -> int:
    """``scripts/storage_proxy.py``: serve one database to many workers through Optuna's gRPC storage proxy."""
    import optuna

    from nas.search.storage import StorageError, display_url, open_storage

    parser = _Parser(prog="storage_proxy.py", formatter_class=_DefaultsFormatter,
                     description="Serve a storage to workers on other machines, which pass --storage grpc://HOST:PORT; "
                                 "only this process talks to the database. Stop it with Ctrl-C.")
    parser.add_argument("--storage", metavar="URL", required=True,
                        help="the storage to serve: sqlite:///PATH, postgresql://..., mysql://... or journal:PATH")
    parser.add_argument("--host", default="localhost", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=_positive_int, default=13000, help="port to listen on")
    args = parser.parse_args(argv)
    try:
        if args.storage.startswith("grpc://"):
            raise StorageError(f"storage {args.storage!r} is itself a proxy; serve the database it fronts")
        storage = open_storage(args.storage)
    except StorageError as err:
        print(f"storage_proxy.py: error: {err}", file=sys.stderr)
        return 2
    print(f"serving {display_url(args.storage)} on grpc://{args.host}:{args.port}", flush=True)
    try:
        optuna.storages.run_grpc_proxy_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        return 0
    return 0
