"""One Markdown table of the overhead section from several result files (e.g. before and after a change).

    python -m dev.benchmarks.compare before-1.json after-1.json before-2.json after-2.json

A row a file, in the order given: the ratios of linzoo and of the bare LightningModule to
the reference loop, linzoo / bare, the reference loop's seconds per epoch and the load average.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dev.benchmarks.timing import median, print_table


def rows(paths: list[Path]) -> list[list[object]]:
    table = []
    for path in paths:
        results = json.loads(path.read_text())
        overhead = results["overhead"]
        linzoo, bare = overhead["linzoo"]["ratio_train"], overhead["bare_lightning"]["ratio_train"]
        load = results["environment"].get("load_average", [float("nan")])[0]
        hand = median(overhead["linzoo"]["hand_train_s"])
        table.append([path.stem, linzoo, bare, linzoo / bare, hand, load])
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="JSON files of scripts/benchmark.py --sections overhead")
    args = parser.parse_args(argv)
    print_table(
        "linzoo and a bare LightningModule against the reference loop (training, per epoch)",
        ["run", "linzoo ratio", "bare ratio", "linzoo / bare", "reference s/epoch", "load average at start"],
        rows(args.results),
    )


if __name__ == "__main__":
    main()
