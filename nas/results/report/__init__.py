"""The report of a study: DataFrames computed from the storage alone (:mod:`.tables`), drawn as PNGs
(:mod:`.plots`) and written with them into ``report.md`` (:mod:`.writer`).

>>> from nas.results.report import write_report
>>> report = write_report(study, "results/digits-default", top=10)
"""

from nas.results.report.attention import AttentionMaps, attention_maps
from nas.results.report.markdown import markdown_table, terminal_table
from nas.results.report.tables import (best_so_far, cost_front, families, family_grid, importances, learning_curves, ranking,
                               references, trials_table)
from nas.results.report.writer import Report, write_report

__all__ = [
    "AttentionMaps",
    "Report",
    "attention_maps",
    "best_so_far",
    "cost_front",
    "families",
    "family_grid",
    "importances",
    "learning_curves",
    "markdown_table",
    "ranking",
    "references",
    "terminal_table",
    "trials_table",
    "write_report",
]
