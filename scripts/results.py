"""Build docs/results.md from finished runs: python scripts/results.py docs/runs/*/*

After a campaign: python scripts/results.py outputs/train/recipes-<stamp>/* --keep-in docs/runs
copies each run's record into docs/runs first (then: scripts/results.py docs/runs/*/* --readme README.md)."""

import sys

from linzoo.reports.results import main

if __name__ == "__main__":
    sys.exit(main())
