"""Benchmark suites, by name: each writes CSV and PNG under an output folder and returns its table.

Suites live one per module and register here, so ``scripts/benchmark.py NAME``
reaches every suite without the CLI listing them.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pandas as pd

from nas.core.registry import unknown_name_message

Suite = Callable[..., pd.DataFrame]
_SUITES: dict[str, Suite] = {}


def register_suite(name: str) -> Callable[[Suite], Suite]:
    """Decorator: ``fn(out_dir: Path, device: str, quick: bool, **budget) -> DataFrame`` runs as suite ``name``.

    Keyword parameters beyond those three are the suite's options (``trials``,
    ``seeds``, ``minutes``, ``tasks``), set from ``scripts/benchmark.py`` flags.
    """

    def decorate(fn: Suite) -> Suite:
        if name in _SUITES:
            raise ValueError(f"benchmark suite {name!r} is already registered")
        _SUITES[name] = fn
        return fn

    return decorate


def suite_names() -> tuple[str, ...]:
    _load_suites()
    return tuple(sorted(_SUITES))


def run_suite(name: str, out_dir: Path, device: str = "auto", quick: bool = False, **options: Any) -> pd.DataFrame:
    """Run suite ``name``; ``options`` (budgets such as ``trials`` or ``seeds``) go to suites that take them."""
    _load_suites()
    if name not in _SUITES:
        raise ValueError(unknown_name_message("benchmark suite", name, suite_names()))
    suite = _SUITES[name]
    accepted = [p for p in inspect.signature(suite).parameters if p not in ("out_dir", "device", "quick")]
    for option in options:
        if option not in accepted:
            takes = ", ".join(f"--{p.replace('_', '-')}" for p in accepted) or "no options"
            raise ValueError(f"suite {name!r} has no option --{option.replace('_', '-')}; it takes: {takes}")
    out_dir.mkdir(parents=True, exist_ok=True)
    return suite(out_dir=out_dir, device=device, quick=quick, **options)


def load_baseline(name: str) -> ModuleType:
    """The module ``scripts/baselines/<name>.py`` of this checkout: baselines live beside the scripts, readable
    as plain files, rather than inside the package they are measured against."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "baselines" / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"baseline {name!r} not found at {path}; benchmarks run from a checkout of the repository")
    spec = importlib.util.spec_from_file_location(f"baselines.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_suites() -> None:
    # Import on first use: suites pull in matplotlib and the trainer, which `import nas` should not.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
