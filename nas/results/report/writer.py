"""``report.md``, ``ranking.csv`` and the PNGs of one study: tables first, then plots, then the Markdown.

>>> report = write_report(study, "results/digits-default", top=10)
>>> print(terminal_table(report.top))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd

from nas.results.answer import MIN_TRIALS, SURE, Answer, answer, helped_or_hurt
from nas.results.report import plots
from nas.results.report.markdown import format_cell, markdown_table
from nas.results.report.tables import (best_so_far, cost_front, families, family_grid, importances, learning_curves, ranking,
                               references, trials_table)
from nas.results.study import objectives, ranked_trials, state_counts
from nas.models.spec import ArchSpec
from nas.results.profile import capability_panel, load_profile, profile_path
from nas.search.record import ARCH, recorded, scored_by_spike
from nas.search.storage import display_url

ATTENTION_SAMPLES = 3
# The profiles this repository ships, used when the results folder has none of its own (a search run with
# --results elsewhere): what an attention type can do does not depend on where the user keeps their studies.
SHIPPED_PROFILES = Path(__file__).resolve().parents[3] / "results" / "benchmarks"


@dataclass
class Report:
    """What :func:`write_report` wrote: the folder, the files, the top table and notes on what was left out."""

    out_dir: Path
    top: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_report(study: optuna.Study, out_dir: str | Path, *, top: int = 10, export_dir: str | Path | None = None,
                 results_dir: str | Path = "results", storage_url: str | None = None, baselines: bool = True) -> Report:
    """Write the report of ``study`` into ``out_dir``; it opens with the answer (the best composite against the
    portfolio's stock Transformer, the exported final model and, with ``baselines`` on a UCR task, MiniRocket on
    the same split). Attention maps are drawn from the export in ``export_dir`` (default ``out_dir/best``) when
    there is one. Refuses a study with no complete trial before writing anything."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top={top!r} must be an integer >= 1")
    full = ranking(study)  # raises when no trial has completed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = trials_table(study)
    goal = objectives(study)
    maximize = goal.maximize[goal.primary]
    metric = study.user_attrs.get("metric", "metric")
    best = ranked_trials(study)[0]
    report = Report(out, full.head(top))
    report.notes += [mixed] if (mixed := scored_by_spike(study.get_trials(deepcopy=False))) else []
    full.to_csv(out / "ranking.csv", index=False)
    report.files.append(out / "ranking.csv")
    figures: dict[str, Path | None] = {
        "history": plots.plot_history(best_so_far(table, maximize), metric, maximize, out / "history.png"),
        "curves": plots.plot_learning_curves(learning_curves(study), metric, best.number, out / "learning_curves.png"),
    }
    grid, counts = family_grid(table, maximize)
    figures["families"] = plots.plot_family_heatmap(grid, counts, metric, maximize, out / "families.png")
    weights, note = importances(study)
    figures["importances"] = None if weights is None else plots.plot_importances(weights, out / "importances.png")
    report.notes += [note] if note else []
    fronts = {c: cost_front(table, c, maximize) for c in ("params", "latency_ms") if table[c].notna().any()}
    figures["cost"] = plots.plot_cost(fronts, metric, maximize, out / "cost.png") if fronts else None
    figures["attention"] = _attention_figure(study, Path(export_dir) if export_dir else out / "best", results_dir,
                                             out / "attention.png", report.notes)
    report.files += [p for p in figures.values() if p is not None]
    export = Path(export_dir) if export_dir else out / "best"
    found = answer(study, _exported(export), _minirocket(study, results_dir, report.notes) if baselines else None)
    capability = _capability(best, results_dir, report.notes)
    if capability is not None:
        figures["capability"] = plots.plot_profile(capability[0].drop(columns="role"), "The winner's parts on the MAD "
                                                   "probes", out / "capability.png")
        report.files.append(figures["capability"])
    text = _markdown(study, report, table, full, figures, metric, maximize, storage_url, found, capability)
    (out / "report.md").write_text(text)
    report.files.insert(0, out / "report.md")
    return report


def _capability(best: optuna.trial.FrozenTrial, results_dir: str | Path,
                notes: list[str]) -> tuple[pd.DataFrame, Path] | None:
    """The capability profile's rows for the winner's parts and the stock Transformer, with the file they came
    from: the profile of the device class the winner trained on, in ``<results>/benchmarks`` or else the one
    this repository ships; a note instead when there is none."""
    device = recorded(best, "device") or "cpu"
    folders = list(dict.fromkeys([(Path(results_dir) / "benchmarks").resolve(), SHIPPED_PROFILES]))
    for folder in folders:
        scores = load_profile(folder, device)
        if scores is not None:
            return capability_panel(scores, ArchSpec.from_json(best.user_attrs[ARCH])), profile_path(folder, device)
    looked = " or ".join(str(profile_path(folder, device)) for folder in folders)
    notes.append(f"no capability profile at {looked}: run `python scripts/benchmark.py profile` to see what the "
                 f"winner's attention types can do")
    return None


def _attention_figure(study: optuna.Study, export_dir: Path, results_dir: str | Path, path: Path,
                      notes: list[str]) -> Path | None:
    """Attention maps of the exported model on the first test samples; a note instead when it cannot be drawn."""
    from nas.models.ensemble import first_member
    from nas.models.saved import METRICS_FILE, load_model
    from nas.results.report.attention import attention_maps
    from nas.data import load_task

    if not (export_dir / METRICS_FILE).is_file():
        notes.append(f"no export in {export_dir} yet: export the study, then report again to see attention maps")
        return None
    try:
        exported = json.loads((export_dir / METRICS_FILE).read_text())
        if exported.get("study") != study.study_name:
            raise ValueError(f"it was exported from study {exported.get('study')!r}, not {study.study_name!r}")
        model = first_member(load_model(export_dir))  # an ensemble's members share one architecture
        task = load_task(exported["task"], seed=study.user_attrs.get("seed", 0), cache_dir=Path(results_dir) / "cache")
    except (ValueError, KeyError, OSError) as err:
        notes.append(f"attention maps left out: the export in {export_dir} cannot be used: {err}")
        return None
    test = task.test
    n = min(ATTENTION_SAMPLES, len(test))
    maps = attention_maps(model, test.x[:n], None if test.mask is None else test.mask[:n])
    labels = [f"test #{i}" + (f" (class {task.classes[int(test.y[i])]})" if task.classes and test.y.dim() == 1 else "")
              for i in range(n)]
    notes.append(f"attention maps: trial {exported['trial']} exported in {export_dir}")
    return plots.plot_attention(maps, labels, path)


def _exported(export_dir: Path) -> dict | None:
    try:
        return json.loads((export_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _minirocket(study: optuna.Study, results_dir: str | Path, notes: list[str]) -> dict | None:
    """MiniRocket on the study's own split for UCR tasks (cached); a note instead of a crash when it cannot run."""
    from nas.data import load_task
    from nas.results.baselines import minirocket_baseline

    name = study.user_attrs.get("task", "")
    if not name.startswith("ucr:"):
        return None
    cache = Path(results_dir) / "cache"
    try:
        return minirocket_baseline(load_task(name, seed=study.user_attrs.get("seed", 0), cache_dir=cache),
                                   study.user_attrs.get("seed", 0), cache)
    except Exception as err:  # aeon missing or failing must not cost the user the report
        notes.append(f"MiniRocket left out: {type(err).__name__}: {err}")
        return None


def _image(figures: dict[str, Path | None], key: str, alt: str) -> str:
    path = figures.get(key)
    return f"![{alt}]({path.name})" if path is not None else "_Not drawn: see the notes below._"


def _markdown(study: optuna.Study, report: Report, table: pd.DataFrame, full: pd.DataFrame,
              figures: dict[str, Path | None], metric: str, maximize: bool, storage_url: str | None,
              found: Answer, capability: tuple[pd.DataFrame, Path] | None) -> str:
    attrs = study.user_attrs
    where = f"; storage `{display_url(storage_url)}`" if storage_url else ""
    direction = "higher is better" if maximize else "lower is better"
    lines = [
        f"# Report: study `{study.study_name}`", "",
        f"Task `{attrs.get('task', '?')}` (metric: {metric}, {direction}), search space `{attrs.get('space', '?')}` "
        f"(hash {attrs.get('space_hash', '?')}), seed {attrs.get('seed', '?')}{where}.",
        f"Trials: {state_counts(study.get_trials(deepcopy=False))}.", "",
        "## Answer", "", found.sentence(), "", markdown_table(found.table()), "",
        "### What helped or hurt", "",
        f"Mean validation {metric} of the complete trials of each family against all the others; a verdict only "
        f"where the difference exceeds {SURE:g} standard errors and the family has at least {MIN_TRIALS} trials.", "",
        markdown_table(helped_or_hurt(table, maximize)), "",
    ]
    if capability is not None:
        panel, source = capability
        lines += ["### What the winner's parts can do", "",
                  "Test accuracy on the MAD capability probes (mean over the levels profiled, best of the learning-rate "
                  "grid), for each attention type and composite in the winner, beside the stock Transformer's softmax "
                  f"attention. From the capability profile of this device class, `{source}` "
                  "(`scripts/benchmark.py profile`).", "",
                  markdown_table(panel.round(3).reset_index()), "",
                  _image(figures, "capability", "capability profile of the winner's parts"), ""]
    refs = references(attrs.get("task"), ranked_trials(study)[0])
    if not refs.empty:
        lines += ["## Compared with published results", "",
                  "Test accuracy on the official test split; published numbers as the task reports them.", "",
                  markdown_table(refs), ""]
    lines += [f"## Top {len(report.top)} of {len(full)} complete trials", "", markdown_table(report.top), "",
              "All complete trials: [ranking.csv](ranking.csv).", ""]
    if "pareto" in full:
        lines += ["## Pareto front", "", markdown_table(full[full["pareto"]].drop(columns="pareto")), ""]
    family_table = families(table, maximize)
    lines += ["## Families", "",
              f"Per topology and per attention type: complete trials, pruned trials, best, median and spread "
              f"(interquartile range) of the validation {metric}.", ""]
    for view, title in (("topology", "By topology"), ("attention", "By attention type (a trial counts under each type it uses)")):
        lines += [f"### {title}", "", markdown_table(family_table[family_table["view"] == view].drop(columns="view")), ""]
    lines += [_image(figures, "families", "best validation metric per topology and attention type"), "",
              "## Search progress", "", _image(figures, "history", "best so far against trials and wall time"), "",
              _image(figures, "curves", "learning curves, pruned trials faded"), "",
              "## What matters", "", _image(figures, "importances", "parameter importances"), "",
              "## Accuracy against cost", "", _image(figures, "cost", "validation metric against parameters and latency"),
              "", "## Attention maps of the exported model", "", _image(figures, "attention", "attention maps"), ""]
    failed = table[(table["state"] == "FAIL") & (table["reason"] != "surplus")]
    if not failed.empty:
        lines += ["## Failed trials", "", "Surplus trials (claimed after the total was reached, never trained) are "
                  "left out.", "", markdown_table(failed[["trial", "reason", "summary"]]), ""]
    if report.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    lines += ["## Next", "", "```bash", f"python scripts/export.py --study {study.study_name}"
              + (f" --storage '{display_url(storage_url)}'" if storage_url else ""), "```", ""]
    return "\n".join(lines)


__all__ = ["Report", "write_report"]
