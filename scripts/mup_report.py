"""docs/mup.md from real runs: python scripts/mup_report.py --sweep outputs/width_transfer/<stamp>"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.reports.mup import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
