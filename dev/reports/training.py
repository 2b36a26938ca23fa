"""Training runs for the reports, through the command line as a user would start them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def train_run(overrides: Sequence[str], *, run_dir: Path) -> Path:
    """``python scripts/train.py <overrides> hydra.run.dir=<run_dir>`` in a child process (the
    ``linzoo.run.cli`` entry point, so it also works from an installed package); returns ``run_dir``.

    A failed run raises ``subprocess.CalledProcessError``; its output goes to the console.
    """
    command = [
        sys.executable,
        "-c",
        "from linzoo.run.cli import train; train()",
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(command, check=True)
    return run_dir
