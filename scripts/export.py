"""Export a study's best trial (or any) as a folder that rebuilds: ``python scripts/export.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import export_main  # noqa: E402

if __name__ == "__main__":  # a spawned process imports this file again as __mp_main__
    raise SystemExit(export_main())
