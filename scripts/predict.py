"""Predict with an exported model on a file of new data: ``python scripts/predict.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works without `pip install -e .` too

from nas.cli import predict_main  # noqa: E402

if __name__ == "__main__":  # a spawned process imports this file again as __mp_main__
    raise SystemExit(predict_main())
