"""Run directories: what a run leaves behind, and the rule that nothing is overwritten.

Every run directory holds the resolved ``config.yaml``, ``checkpoints/`` and a strict-JSON
``metrics.json``. A directory that already holds a run is refused, unless the run is
being resumed from one of its own checkpoints; then the earlier CSV log is kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def ensure_fresh_run_dir(output_dir: Path, *, resuming_from: str | None) -> None:
    """Refuse to write a new run over a finished one: nothing a user made is overwritten."""
    previous = [output_dir / "metrics.json", *sorted((output_dir / "checkpoints").glob("*.ckpt"))]
    previous = [path for path in previous if path.exists()]
    if not previous:
        return
    if resuming_from is not None and Path(resuming_from).resolve().is_relative_to(output_dir.resolve()):
        keep_csv_log(output_dir)
        return
    raise FileExistsError(
        f"The run directory {output_dir} already holds a run ({', '.join(p.name for p in previous)}); "
        "nothing was touched. Choose a new hydra.run.dir, or continue that run with "
        f"ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}."
    )


def keep_csv_log(output_dir: Path) -> None:
    """Resuming into the same run directory: Lightning's CSVLogger would replace
    ``csv/metrics.csv``, so the earlier log is moved to ``csv/metrics-before-resume-N.csv``."""
    log_file = output_dir / "csv" / "metrics.csv"
    if not log_file.exists():
        return
    index = 1
    while (backup := log_file.with_name(f"metrics-before-resume-{index}.csv")).exists():
        index += 1
    log_file.rename(backup)
    log.info("Kept the earlier CSV log of %s as %s.", output_dir, backup.name)


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` into ``output_dir``."""
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path
