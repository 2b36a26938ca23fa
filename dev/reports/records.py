"""Keep the record of finished runs in the repository: ``scripts/results.py --keep-in docs/runs``.

A run directory holds checkpoints and pictures (megabytes); its record is what the results
table reads plus the per-epoch log, a few kilobytes:

    <into>/<campaign>/<run>/metrics.json             test metrics, epochs, wall time, ended_at
    <into>/<campaign>/<run>/config.yaml              the resolved config
    <into>/<campaign>/<run>/.hydra/overrides.yaml    the command line
    <into>/<campaign>/<run>/csv/metrics.csv          the per-epoch log (the learning curves)

``<campaign>/<run>`` are the last two parts of the run's path (e.g.
``recipes-2026-11-25_06-18-03/cnn_mnist-seed0``), so ``scripts/results.py docs/runs/*/* --out docs/results.md``
rebuilds the table from a fresh clone. A record that is already kept is never overwritten
with a different one.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

RECORD_FILES = ("metrics.json", "config.yaml", ".hydra/overrides.yaml", "csv/metrics.csv")


def record_metrics(run: Path) -> str:
    """The run's ``metrics.json`` text with ``ended_at`` (ISO, UTC): runs from before the
    field get it from the file's modification time, which a copy or a git clone would lose."""
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    if "ended_at" not in metrics:
        finished = datetime.fromtimestamp(metrics_file.stat().st_mtime, tz=timezone.utc)
        metrics["ended_at"] = finished.isoformat(timespec="seconds")
    return json.dumps(metrics, indent=2) + "\n"


def keep_record(run: Path, into: Path) -> Path:
    """Copy the record of the finished run ``run`` into ``into/<campaign>/<run>``; returns that
    folder. A run already inside ``into`` stays as it is. Raises FileExistsError when a different
    record is kept there already, and FileNotFoundError when ``run`` has no metrics.json."""
    run, into = Path(run).resolve(), Path(into).resolve()
    if into in run.parents:
        return run
    if not (run / "metrics.json").is_file():
        raise FileNotFoundError(f"{run} has no metrics.json: only finished runs have a record to keep.")
    kept = into / run.parent.name / run.name
    metrics = record_metrics(run)
    if (kept / "metrics.json").is_file():
        if (kept / "metrics.json").read_text() != metrics:
            raise FileExistsError(
                f"{kept} already keeps a different record of a run named {run.parent.name}/{run.name}; "
                "move one of them, or give the new run another directory (hydra.run.dir=...)."
            )
        return kept
    for name in RECORD_FILES[1:]:
        source = run / name
        if name == "csv/metrics.csv" and not source.is_file():
            source = next(iter(sorted(run.glob("csv/**/metrics.csv"))), source)
        if source.is_file():
            (kept / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, kept / name)
    (kept / "metrics.json").write_text(metrics)  # last: a record with metrics.json is complete
    return kept
