"""The commands a search prints to report and export run from wherever the user ran it."""

from __future__ import annotations

import shlex
from pathlib import Path

from nas.core.scripts import SCRIPTS, script_command


def _path_in(command: str) -> Path:
    program, path = shlex.split(command)
    assert program == "python"
    return Path(path)


def test_from_the_repository_root_the_command_reads_as_the_readme_writes_it(monkeypatch):
    monkeypatch.chdir(SCRIPTS.parent)
    assert script_command("export.py") == "python scripts/export.py"


def test_from_another_folder_the_command_points_at_the_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _path_in(script_command("report.py"))
    assert not path.is_absolute() and (tmp_path / path).resolve() == (SCRIPTS / "report.py").resolve()


def test_a_path_with_a_space_is_quoted_so_the_command_pastes_whole(tmp_path, monkeypatch):
    scripts = tmp_path / "my checkout" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "predict.py").touch()
    monkeypatch.setattr("nas.core.scripts.SCRIPTS", scripts)
    monkeypatch.chdir(tmp_path)
    assert script_command("predict.py") == "python 'my checkout/scripts/predict.py'"


def test_without_the_repository_it_falls_back_to_the_readmes_path(monkeypatch, tmp_path):
    monkeypatch.setattr("nas.core.scripts.SCRIPTS", tmp_path)
    assert script_command("report.py") == "python scripts/report.py"
