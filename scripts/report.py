"""Rank a study's trials, draw its plots, write report.md: ``python scripts/report.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import report_main  # noqa: E402

if __name__ == "__main__":  # a spawned process imports this file again as __mp_main__
    raise SystemExit(report_main())
