"""Search composite attention models for a task: ``python scripts/search.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import search_main  # noqa: E402

if __name__ == "__main__":  # --jobs spawns workers, which import this file again as __mp_main__
    raise SystemExit(search_main())
