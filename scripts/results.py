"""Build docs/results.md from finished runs: python scripts/results.py outputs/train/*"""

import sys

from linzoo.reports.results import main

if __name__ == "__main__":
    sys.exit(main())
