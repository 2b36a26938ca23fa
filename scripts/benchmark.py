"""Speed of linzoo, side by side in one process: python scripts/benchmark.py --help (docs/benchmarks.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.benchmarks.run import main  # noqa: E402

if __name__ == "__main__":
    main()
