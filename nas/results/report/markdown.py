"""Text forms of the report's tables: cells formatted for reading, as Markdown or for the terminal."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

DIGITS = {"latency_ms": 2, "seconds": 1}


def _compact(value: float) -> str:
    """12345678 -> ``12.3M``: FLOPs span many orders of magnitude."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def format_cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if column == "flops":
        return _compact(float(value))
    if isinstance(value, float):
        if column in ("params", "epochs", "complete", "pruned", "trial", "rank"):
            return f"{value:.0f}"
        return f"{value:.{DIGITS.get(column, 4)}f}"
    return str(value)


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Every cell as display text (4 digits for metrics, compact FLOPs, ``-`` for missing)."""
    return pd.DataFrame({c: [format_cell(c, v) for v in table[c].tolist()] for c in table.columns}, dtype=object)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table; text columns left-aligned, numbers right-aligned."""
    if table.empty:
        return "_(none)_"
    text = formatted(table)
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in text.itertuples(index=False)]
    return "\n".join(lines)


def terminal_table(table: pd.DataFrame, width: int = 70) -> str:
    """The table as aligned text for the terminal, long summaries cut to ``width`` characters."""
    text = formatted(table)
    if "summary" in text:
        text["summary"] = [s if len(s) <= width else s[: width - 3] + "..." for s in text["summary"]]
    return text.to_string(index=False)


__all__ = ["format_cell", "formatted", "markdown_table", "terminal_table"]
