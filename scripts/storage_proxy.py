"""Serve one database to many workers through Optuna's gRPC storage proxy: ``python scripts/storage_proxy.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import storage_proxy_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(storage_proxy_main())
