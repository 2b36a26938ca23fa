"""A results table from finished runs, on stdout: python scripts/results.py outputs/train/*

The project's page only when named: python scripts/results.py docs/runs/*/* --out docs/results.md --readme README.md
After a campaign: python scripts/results.py outputs/train/recipes-<stamp>/* --keep-in docs/runs --out <campaign>/results.md
copies each run's record into docs/runs first (then the command above rebuilds the page)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.reports.results import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
