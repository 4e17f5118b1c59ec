"""report.md, ranking.csv and the PNGs from the storage alone: a real tiny search, SQLite and PostgreSQL, and the CLI."""

from __future__ import annotations

import re

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.cli import report_main
from nas.results.export import export_trial
from nas.results.report import write_report
from tests.support.studies import arch, hand_study, tiny_study

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ["history.png", "learning_curves.png", "families.png", "cost.png"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def written(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    export = export_trial(tiny.load(), out / "best", results_dir=tiny.results, final=False, device="cpu")
    return write_report(tiny.load(), out, top=3, results_dir=tiny.results, storage_url=tiny.url), export


def embedded(report_md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_md)


def test_the_report_files_exist_and_every_plot_is_embedded(written):
    report, _ = written
    out = report.out_dir
    drawn = PLOTS + ["attention.png", "capability.png"]  # the capability panel from the shipped CPU profile
    for name in drawn:
        assert (out / name).read_bytes().startswith(PNG), name
    text = (out / "report.md").read_text()
    assert sorted(embedded(text)) == sorted(drawn)
    assert "## Top 2 of 2 complete trials" in text and "[ranking.csv](ranking.csv)" in text
    assert "parameter importances need 5 complete trials" in text  # said, not silently missing


def test_the_ranking_first_row_is_the_study_best_trial_and_export_picks_it(tiny, written):
    report, export = written
    best = tiny.load().best_trial
    ranking = pd.read_csv(report.out_dir / "ranking.csv", float_precision="round_trip")
    assert ranking["trial"][0] == best.number == report.top["trial"][0] == export.trial
    assert ranking["val"][0] == best.value and ranking["test"][0] == best.user_attrs["test"]
    assert ranking["summary"][0] == best.user_attrs["summary"]


def test_the_report_works_on_a_study_stored_in_postgresql(tiny, written, postgres_url, tmp_path, capsys):
    optuna.copy_study(from_study_name="tiny", from_storage=tiny.url, to_storage=postgres_url,
                      to_study_name="tiny-report")
    assert report_main(["--study", "tiny-report", "--storage", postgres_url, "--results", str(tiny.results),
                        "--out", str(tmp_path)]) == 0
    assert "top 2 of study 'tiny-report'" in capsys.readouterr().out
    sqlite_ranking = pd.read_csv(written[0].out_dir / "ranking.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ranking.csv"), sqlite_ranking)
    assert all((tmp_path / name).is_file() for name in PLOTS)


def test_storage_users_find_the_summary_and_metrics_as_plain_dataframe_columns(tiny):
    frame = tiny.load().trials_dataframe()
    for column in ("user_attrs_summary", "user_attrs_best_val", "user_attrs_test", "user_attrs_params",
                   "user_attrs_latency_ms", "user_attrs_weights"):
        assert column in frame, column
    best = tiny.load().best_trial.number
    assert frame.set_index("number").loc[best, "user_attrs_weights"] == f"tiny/weights/trial_{best}.safetensors"


@pytest.mark.parametrize("directions, metric", [(("maximize", "minimize"), "accuracy"), (("minimize",), "mse")])
def test_multi_objective_and_lower_is_better_studies_report_too(directions, metric, tmp_path):
    rows = [{"values": [v, c][: len(directions)], "arch": arch(t, *types), "params": p, "test": v}
            for v, c, t, types, p in [(0.9, 5.0, "single", ("dot",), 300), (0.8, 1.0, "parallel", ("dot", "linear"), 900),
                                      (0.7, 9.0, "serial", ("cosine", "dot"), 100)]]
    study = hand_study(rows + [{"state": TrialState.PRUNED, "best_val": 0.5}], directions=directions, metric=metric)
    report = write_report(study, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert ("## Pareto front" in text) == (len(directions) > 1)
    assert report.top["trial"][0] == (0 if metric == "accuracy" else 2)
    assert ("lower is better" if metric == "mse" else "higher is better") in text


def test_cli_prints_the_top_table_and_refuses_bad_input_with_one_line(tiny, tmp_path, capsys):
    assert report_main(["--study", "tiny", "--results", str(tiny.results), "--out", str(tmp_path / "r"),
                        "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "top 1 of study 'tiny'" in out and tiny.load().best_trial.user_attrs["summary"] in out
    assert report_main(["--study", "nope", "--storage", tiny.url]) == 2
    assert capsys.readouterr().err == f"report.py: error: study 'nope' is not in {tiny.url}; studies there: tiny\n"


def test_a_study_without_complete_trials_is_refused_and_nothing_is_written(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    study = optuna.create_study(study_name="empty", storage=url)
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    assert report_main(["--study", "empty", "--results", str(tmp_path)]) == 2
    assert "study 'empty' has no complete trial yet (1 pruned)" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def _profile_runs():
    from nas.results.profile import mixers

    names = list(mixers(window=1))
    return names, pd.DataFrame([(n, p, 0, 1e-3, (i + 1) / 20) for i, n in enumerate(names)
                                for p in ("in_context_recall", "compression")],
                               columns=["mixer", "probe", "level", "lr", "test"])


def test_a_profile_of_the_device_class_adds_the_capability_panel(tiny, tmp_path, monkeypatch):
    from nas.models.spec import ArchSpec
    from nas.results.profile import parts, profile_path
    from nas.results.report import writer

    monkeypatch.setattr(writer, "SHIPPED_PROFILES", tmp_path / "shipped")  # none shipped either
    study = tiny.load()
    names, runs = _profile_runs()
    (tiny.results / "benchmarks").mkdir(exist_ok=True)
    path = profile_path(tiny.results / "benchmarks", "cpu")
    try:
        without = (write_report(study, tmp_path / "without", results_dir=tmp_path, baselines=False).out_dir
                   / "report.md").read_text()
        runs.to_csv(path, index=False)
        report = write_report(study, tmp_path / "with", results_dir=tiny.results, baselines=False)
    finally:
        path.unlink(missing_ok=True)
    assert "What the winner's parts can do" not in without and "no capability profile at" in without
    text = (report.out_dir / "report.md").read_text()
    panel = text.split("### What the winner's parts can do")[1].split("##")[0]
    assert f"`{path.resolve()}`" in panel
    winner = parts(ArchSpec.from_json(study.best_trial.user_attrs["arch"]))
    for name in winner + ["dot"]:
        score = (names.index(name) + 1) / 20
        assert f"| {name} |" in panel and f"{score:g}" in panel, name
    assert "capability.png" in embedded(text)
    assert (report.out_dir / "capability.png").read_bytes().startswith(PNG)


def test_a_results_folder_without_a_profile_uses_the_shipped_one(tiny, tmp_path, monkeypatch):
    """A search run with --results elsewhere still gets the panel, from the profile this repository ships."""
    from nas.results.profile import profile_path
    from nas.results.report import writer

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    _profile_runs()[1].to_csv(profile_path(shipped, "cpu"), index=False)
    monkeypatch.setattr(writer, "SHIPPED_PROFILES", shipped)
    report = write_report(tiny.load(), tmp_path / "report", results_dir=tmp_path / "elsewhere", baselines=False)
    text = (report.out_dir / "report.md").read_text()
    assert "What the winner's parts can do" in text and f"`{profile_path(shipped, 'cpu')}`" in text
    assert not any("capability profile" in note for note in report.notes)


def test_the_repository_ships_a_cpu_profile_for_the_report():
    from nas.results.profile import load_profile
    from nas.results.report.writer import SHIPPED_PROFILES

    assert load_profile(SHIPPED_PROFILES, "cpu") is not None
