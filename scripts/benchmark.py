"""Run a benchmark suite by name: ``python scripts/benchmark.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import benchmark_main  # noqa: E402

if __name__ == "__main__":  # suites spawn processes, which import this file again as __mp_main__
    raise SystemExit(benchmark_main())
