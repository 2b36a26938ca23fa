"""The summary of a sweep: ``<sweep dir>/sweep_results.yaml``, each job's overrides and monitored
metric, best first, also printed as a short table.

A grid sweep (``python scripts/train.py -m optimizer.lr=0.001,0.01``) and an Optuna search
(which also writes its own ``optimization_results.yaml``) end in :class:`SweepSummary`, a Hydra
callback (configs/train.yaml). It reads every job directory under the sweep directory: its
``.hydra/overrides.yaml`` and the ``monitor`` entry of its ``metrics.json`` (metric, mode,
best: what the sweeper optimises). Jobs are ranked by ``best`` in their metric's direction;
jobs that monitor another metric than the first (``-m model=mlp,autoencoder``) are ranked among
themselves after it, and jobs without a value (killed, never validated) come last.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.run.run_dirs import is_launched_worker, run_status

__all__ = ["RESULTS_FILE", "SweepJob", "SweepSummary", "rank_jobs", "read_jobs", "summarize_sweep", "write_summary"]

RESULTS_FILE = "sweep_results.yaml"
TABLE_ROWS = 10  # the printed table's length; the file lists every job


@dataclass
class SweepJob:
    """One job of a sweep, as its directory tells it."""

    dir: str  # relative to the sweep directory, e.g. "0"
    overrides: list[str]
    status: str  # metrics.json's status; "no metrics.json" for a job that never ended cleanly
    metric: str | None
    mode: str | None  # "min" or "max"
    best: float | None  # None: never measured, not finite, or no metrics.json


def read_jobs(sweep_dir: Path) -> list[SweepJob]:
    """Every job directory under ``sweep_dir`` (one that holds ``.hydra/overrides.yaml``), in job order."""
    jobs = []
    for overrides_file in sweep_dir.rglob(".hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        status = run_status(job_dir)
        monitor: dict[str, Any] = {}
        if status not in (None, "unknown"):
            monitor = json.loads((job_dir / "metrics.json").read_text()).get("monitor") or {}
        jobs.append(
            SweepJob(
                dir=job_dir.relative_to(sweep_dir).as_posix(),
                overrides=[str(o) for o in yaml.safe_load(overrides_file.read_text()) or []],
                status=status or "no metrics.json",
                metric=monitor.get("metric"),
                mode=monitor.get("mode"),
                best=monitor.get("best"),
            )
        )
    return sorted(jobs, key=lambda job: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", job.dir)])


def rank_jobs(jobs: list[SweepJob]) -> list[SweepJob]:
    """Best first (see the module docstring); ties keep the job order."""
    metrics = list(dict.fromkeys((job.metric, job.mode) for job in jobs if job.best is not None))

    def key(job: SweepJob) -> tuple[int, float]:
        if job.best is None:
            return len(metrics), 0.0
        return metrics.index((job.metric, job.mode)), -job.best if job.mode == "max" else job.best

    return sorted(jobs, key=key)


def summarize_sweep(jobs: list[SweepJob]) -> dict[str, Any]:
    """What ``sweep_results.yaml`` holds: the best job, the overrides every job shares, and
    every job best first with the overrides that set it apart (all of them for a lone job)."""
    common = [o for o in jobs[0].overrides if all(o in job.overrides for job in jobs)] if len(jobs) > 1 else []
    rows = [
        {
            "dir": job.dir,
            "overrides": [o for o in job.overrides if o not in common],
            "metric": job.metric,
            "mode": job.mode,
            "best": job.best,
            "status": job.status,
        }
        for job in rank_jobs(jobs)
    ]
    best = copy.deepcopy(rows[0]) if rows and rows[0]["best"] is not None else None  # a copy: no YAML anchors
    return {"best": best, "common_overrides": common, "jobs": rows}


def table(summary: dict[str, Any], *, rows: int = TABLE_ROWS) -> str:
    """The summary as aligned lines: job directory, monitored metric, overrides."""
    lines = []
    for job in summary["jobs"][:rows]:
        if job["best"] is not None:
            result = f"{job['metric']}={job['best']:.4g} ({job['mode']})"
        else:
            result = f"{job['metric'] or 'metric'} not measured ({job['status']})"
        lines.append((job["dir"], result, " ".join(job["overrides"]) or "(no overrides)"))
    widths = [max(len(line[column]) for line in lines) for column in (0, 1)]
    text = [f"  {job:<{widths[0]}}  {result:<{widths[1]}}  {overrides}" for job, result, overrides in lines]
    if len(summary["jobs"]) > rows:
        text.append(f"  ... {len(summary['jobs']) - rows} more")
    return "\n".join(text)


def write_summary(sweep_dir: Path) -> Path | None:
    """Write ``<sweep_dir>/sweep_results.yaml`` and print its table; None when no job ran."""
    jobs = read_jobs(sweep_dir)
    if not jobs:
        return None
    summary = summarize_sweep(jobs)
    header = (
        f"# The jobs of the sweep {sweep_dir}, best first: each job's monitored metric (metrics.json's\n"
        "# monitor: metric, mode, best) and the overrides that set it apart from common_overrides.\n"
    )
    path = write_text_atomically(sweep_dir / RESULTS_FILE, header + yaml.safe_dump(summary, sort_keys=False))
    print(f"Sweep results, best first ({path}):\n{table(summary)}")
    return path


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, :func:`write_summary` of its sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if is_launched_worker():  # rank 0 of a distributed job writes it
            return
        write_summary(Path(str(OmegaConf.select(config, "hydra.sweep.dir"))))
