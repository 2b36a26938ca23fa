"""Every classifier on every CPU backend (torch, torchao int8, ONNX Runtime fp32/int8), written to docs/quantization.md:
LINZOO_DATA=/path/with/MNIST/raw python scripts/quantization_report.py [--epochs N] [--run MODEL=RUN_DIR ...]"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dev/ lives in the clone, not in the wheel

from dev.reports.quantization import main  # noqa: E402

if __name__ == "__main__":
    main()
