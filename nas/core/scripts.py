"""The command that runs one of this repository's scripts, written so it can be pasted where the user is.

A search ends by printing its report and export commands. Written as ``scripts/...`` they
fail for anyone who ran ``python ../attention-nas/scripts/search.py`` from another folder, so
the path is made relative to the current folder instead.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def script_command(name: str) -> str:
    """``python <path to scripts/name>`` from the current folder (``scripts/name`` where the repository is absent)."""
    path = SCRIPTS / name
    if not path.is_file():  # the package installed without its repository: nothing better to point at
        return f"python scripts/{name}"
    try:
        where = os.path.relpath(path)
    except ValueError:  # another drive on Windows: no relative path exists
        where = str(path)
    return f"python {shlex.quote(where)}"
