"""Regenerate docs/errors.md: python scripts/error_table.py (runs every bad input of the table)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.reports.errors import main  # noqa: E402

if __name__ == "__main__":
    main()
