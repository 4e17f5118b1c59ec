"""Benchmark suites, by name: each writes CSV and PNG under an output folder and returns its table.

Suites live one per module and register here, so ``scripts/benchmark.py NAME``
reaches every suite without the CLI listing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from nas.attention.registry import unknown_name_message

Suite = Callable[..., pd.DataFrame]
_SUITES: dict[str, Suite] = {}


def register_suite(name: str) -> Callable[[Suite], Suite]:
    """Decorator: ``fn(out_dir: Path, device: str, quick: bool) -> DataFrame`` runs as suite ``name``."""

    def decorate(fn: Suite) -> Suite:
        if name in _SUITES:
            raise ValueError(f"benchmark suite {name!r} is already registered")
        _SUITES[name] = fn
        return fn

    return decorate


def suite_names() -> tuple[str, ...]:
    _load_suites()
    return tuple(sorted(_SUITES))


def run_suite(name: str, out_dir: Path, device: str = "auto", quick: bool = False) -> pd.DataFrame:
    _load_suites()
    if name not in _SUITES:
        raise ValueError(unknown_name_message("benchmark suite", name, suite_names()))
    out_dir.mkdir(parents=True, exist_ok=True)
    return _SUITES[name](out_dir=out_dir, device=device, quick=quick)


def _load_suites() -> None:
    # Import on first use: suites pull in matplotlib and the trainer, which `import nas` should not.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
