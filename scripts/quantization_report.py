"""int8 against float32 on full MNIST, written to docs/quantization.md:
LINZOO_DATA=/path/with/MNIST/raw python scripts/quantization_report.py [--epochs N] [--run MODEL=RUN_DIR]"""

from linzoo.reports.quantization import main

if __name__ == "__main__":
    main()
