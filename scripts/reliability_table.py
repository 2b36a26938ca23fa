"""Regenerate docs/reliability.md's table of fault tests from their docstrings: python scripts/reliability_table.py [--check]"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.reports.reliability import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
