"""Speed of linzoo, side by side in one process: python scripts/benchmark.py --help (docs/benchmarks.md)."""

from linzoo.benchmarks.run import main

if __name__ == "__main__":
    main()
