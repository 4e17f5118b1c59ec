"""The package's shape: layers import only downwards, no cycles, Optuna through its public API, a light load_model."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "nas").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.py")),
           *sorted((ROOT / "scripts").rglob("*.py"))]


def test_the_import_contracts_hold():
    """pyproject's import-linter contracts: layers cli > results > search > training > models > data > core, and
    no cycles among the modules of any package."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "2 kept, 0 broken" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def _private_optuna_uses(path: Path) -> list[str]:
    """Imports of ``optuna.*._private`` modules, uses of an object's ``_storage``, and classes deriving from an
    Optuna storage, in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            found += [f"import {n}" for n in names if n.startswith("optuna") and "._" in n]
        elif isinstance(node, ast.Attribute) and node.attr in ("_storage", "_backend"):
            found.append(f".{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            found += [f"class {node.name}({b})" for b in bases if "Storage" in b and "optuna" in b]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reaches_into_optuna_private_api(path):
    assert _private_optuna_uses(path) == []


def test_the_private_api_check_finds_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from optuna.storages._rdb.storage import RDBStorage\nimport optuna\n"
                   "class S(optuna.storages.RDBStorage):\n    pass\nx = study._storage\n")
    assert _private_optuna_uses(bad) == ["import optuna.storages._rdb.storage",
                                         "import optuna.storages._rdb.storage.RDBStorage",
                                         "class S(optuna.storages.RDBStorage)", "._storage at line 5"]


def test_loading_a_model_imports_neither_optuna_pandas_nor_matplotlib():
    code = ("import sys\nfrom nas import load_model\nimport nas.models.saved\n"
            "print(sorted(m for m in ('optuna', 'pandas', 'matplotlib', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


def test_benchmarks_and_test_servers_stay_out_of_the_wheel():
    from setuptools import find_packages

    packages = find_packages(str(ROOT), include=["nas*"])
    assert "nas" in packages and not [p for p in packages if "bench" in p or "support" in p]
