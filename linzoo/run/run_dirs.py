"""Run directories: what a run leaves behind, its status, and the rule that nothing is overwritten.

Every run directory holds the resolved ``config.yaml``, ``checkpoints/`` and a strict-JSON
``metrics.json`` whose ``"status"`` says how the run ended:

- ``"finished"``: trained (and tested) to the end;
- ``"interrupted"``: stopped by SIGTERM/SIGINT after saving ``checkpoints/last.ckpt``;
- ``"diverged"``: stopped at a non-finite loss; the checkpoints hold the last good weights.

A run killed without a chance to say so (SIGKILL, OOM) has checkpoints but no ``metrics.json``.
``metrics.json`` of runs older than the status field counts as finished.

The rules (:func:`check_run_dir`):

- ``eval`` and ``sample`` write into a fresh directory only: one that is absent or empty.
- ``train`` writes into a fresh directory, or resumes an unfinished run in its own directory
  (``ckpt_path`` inside that directory and no ``"finished"`` status). A finished run is
  continued into a new directory (``ckpt_path=<old run>/checkpoints/last.ckpt`` plus a new
  ``hydra.run.dir``, or none).

From the command line the check runs in :class:`RunDirGuard`, a Hydra callback (configs/hydra/
default.yaml) called by Hydra before it writes ``.hydra/`` or the job log: a refused run
leaves every byte of the directory as it was. ``train()``/``evaluate()`` check again for
Python-API callers, then ignoring what Hydra itself wrote for the current job.

A command that a user error stops once its run directory exists (a refused resume, missing
data, a missing checkpoint) leaves no directory behind either: the guard notes which
directories the command is about to create, and :func:`remove_refused_run` (linzoo/run/cli.py)
removes Hydra's files from them and then each one that is left empty. A directory that
existed before the command, and any file that Hydra did not write, are never touched.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.common.errors import UserFileExistsError

log = logging.getLogger(__name__)

Status = Literal["finished", "interrupted", "diverged"]
STATUSES: tuple[str, ...] = ("finished", "interrupted", "diverged")
# What Hydra writes into the run directory of the current job before linzoo's code runs.
HYDRA_OWN_FILES = (".hydra",)
HYDRA_OWN_SUFFIX = ".log"
HYDRA_CONFIG_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # in .hydra/

# The directories this command creates for its run, the run directory first and then each
# parent that did not exist either; noted by RunDirGuard before Hydra creates them.
_new_dirs: list[Path] = []


class RunDirError(UserFileExistsError):
    """The run directory holds something that this run would overwrite."""


def run_status(output_dir: Path) -> str | None:
    """How the run in ``output_dir`` ended: a status of :data:`STATUSES`, ``"unknown"`` when
    ``metrics.json`` is unreadable, or None when there is no ``metrics.json`` (never ended
    cleanly: killed, or still running)."""
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(metrics, dict):
        return "unknown"
    return str(metrics.get("status", "finished"))  # before "status" existed, metrics.json meant finished


def run_contents(output_dir: Path, *, view: str = "in_job") -> list[str]:
    """Names of what ``output_dir`` holds that count for the run-directory rules (empty when
    it does not exist).

    ``view``: ``"before_hydra"`` counts everything but Hydra's job logs (``*.log``: Hydra
    appends to them, and under torchrun every rank's Hydra opens one at about the same time
    as rank 0 checks); ``"in_job"`` (inside the job, after Hydra wrote ``.hydra/`` and
    ``<job>.log`` for this very run) also leaves ``.hydra/`` out;
    ``"worker"`` (a rank > 0 of a distributed job, started while rank 0 is already writing
    this run's ``config.yaml`` and logs) counts only another run's ``metrics.json`` and
    ``checkpoints/*.ckpt``.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    names = sorted(path.name for path in output_dir.iterdir())
    if view in ("in_job", "before_hydra"):
        names = [name for name in names if not name.endswith(HYDRA_OWN_SUFFIX)]
    if view == "in_job":
        names = [name for name in names if name not in HYDRA_OWN_FILES]
    elif view == "worker":
        has_checkpoints = any((output_dir / "checkpoints").glob("*.ckpt"))
        names = [name for name in names if name == "metrics.json" or (name == "checkpoints" and has_checkpoints)]
    return names


def check_run_dir(output_dir: str | Path, *, job: str, ckpt_path: str | Path | None, view: str = "in_job") -> bool:
    """Refuse (:class:`RunDirError`) a run that would write over another run's files.

    ``job`` is ``"train"``, ``"eval"`` or ``"sample"``; ``view`` as in :func:`run_contents`.
    Returns True when ``train`` resumes the unfinished run of ``output_dir`` in place,
    False for a fresh directory.
    """
    output_dir = Path(output_dir)
    contents = run_contents(output_dir, view=view)
    if not contents:
        return False
    listing = ", ".join(contents[:6]) + (", ..." if len(contents) > 6 else "")
    if job != "train":
        raise RunDirError(
            f"hydra.run.dir={output_dir} is not empty ({listing}); {job} writes into a new directory only, "
            f"so nothing was touched. Leave hydra.run.dir unset (a new outputs/{job}/<date_time>/ is made) "
            "or name a directory that does not exist yet."
        )
    inside = ckpt_path is not None and Path(ckpt_path).resolve().is_relative_to(output_dir.resolve())
    status = run_status(output_dir)
    if inside and status != "finished":
        return True
    last = output_dir / "checkpoints" / "last.ckpt"
    if status == "finished":
        continue_hint = (
            f"That run is finished: to train it further, start a new run from its checkpoint with "
            f"ckpt_path={last} and a new hydra.run.dir (or none)."
        )
    elif status is None and not (output_dir / "checkpoints").is_dir():
        continue_hint = "Choose a new hydra.run.dir (or leave it unset)."
    else:
        continue_hint = (
            f"That run did not finish (status: {status or 'no metrics.json'}): resume it in place with "
            f"ckpt_path={last}, or choose a new hydra.run.dir."
        )
    raise RunDirError(
        f"hydra.run.dir={output_dir} already holds a run ({listing}); nothing was touched. {continue_hint}"
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


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(item) for item in value]
    return value


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` into ``output_dir`` as strict JSON (NaN and inf become null), atomically."""
    path = Path(output_dir) / "metrics.json"
    return write_text_atomically(path, json.dumps(strict_json_value(metrics), indent=2, allow_nan=False) + "\n")


def is_launched_worker() -> bool:
    """True in a process of a distributed job other than global rank 0 (torchrun, SLURM, or
    Lightning's DDP launcher, which re-runs the script for ranks 1..N-1)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name)
        if value is not None and value.isdigit() and int(value) > 0:
            return True
    return False


def missing_dirs(output_dir: str | Path) -> list[Path]:
    """``output_dir`` and its parents up to the first that exists, innermost first; [] when it exists."""
    path, missing = Path(os.path.abspath(output_dir)), []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_refused_run() -> list[Path]:
    """After a user error stopped this command: when the run directory that the command created
    holds only what Hydra wrote into it (``.hydra/`` with its three files, the job log), remove
    those, that directory and the parents the command created (each only when empty). Returns
    the directories removed.

    Nothing is touched when the run directory existed before the command (resuming in place, a
    directory named with ``hydra.run.dir``) or holds anything else: a run that had written
    results keeps them, its log included.
    """
    if not _new_dirs:
        return []
    run_dir, created = _new_dirs[0], list(_new_dirs)
    _new_dirs.clear()
    hydra_dir = run_dir / ".hydra"
    hydra_files = {path.name for path in hydra_dir.iterdir()} if hydra_dir.is_dir() else set()
    if run_contents(run_dir, view="in_job") or not hydra_files <= set(HYDRA_CONFIG_FILES):
        return []
    root_logger = logging.getLogger()
    for handler in list(root_logger.handlers):  # Hydra's job log (hydra/job_logging)
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir:
            root_logger.removeHandler(handler)
            handler.close()
            Path(handler.baseFilename).unlink(missing_ok=True)
    for name in hydra_files:
        (hydra_dir / name).unlink()
    removed: list[Path] = []
    for directory in [hydra_dir, *created]:
        if not directory.is_dir():
            continue  # no .hydra/ (hydra.output_subdir=null)
        try:
            directory.rmdir()
        except OSError:
            break  # not empty (another log): it and its parents stay
        removed.append(directory)
    return removed


class RunDirGuard(Callback):
    """Hydra callback: the run-directory rules, checked before Hydra writes anything; notes
    the directories that this command creates (for :func:`remove_refused_run`).

    Hydra calls ``on_run_start`` after composing the config and before ``run_job`` creates
    the directory and writes ``.hydra/{config,hydra,overrides}.yaml`` and the job log
    (hydra/_internal/hydra.py, hydra/core/utils.py). Hydra turns exceptions raised by
    callbacks into warnings, so a refusal leaves with ``SystemExit`` (the message, exit
    status 1) instead. Processes other than rank 0 of a distributed job check only for
    another run's ``metrics.json`` and checkpoints (rank 0 may already be writing this
    run's files) and write no ``.hydra/``.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        worker = is_launched_worker()
        if worker:  # rank 0 writes .hydra/; the others would race it
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
        output_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        self._check(output_dir, config, worker=worker)
        _new_dirs[:] = [] if worker else missing_dirs(output_dir)  # what remove_refused_run may remove

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep goes into a fresh sweep directory (its job directories are made inside it)."""
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        contents = run_contents(sweep_dir, view="before_hydra")
        if contents:
            self._refuse(
                f"hydra.sweep.dir={sweep_dir} is not empty ({', '.join(contents[:6])}); nothing was touched. "
                "Leave hydra.sweep.dir unset or name a directory that does not exist yet."
            )

    @staticmethod
    def _check(output_dir: Path, config: DictConfig, *, worker: bool) -> None:
        job = str(config.get("task_name", "train"))
        ckpt_path = config.get("ckpt_path") if job == "train" else None
        try:
            check_run_dir(output_dir, job=job, ckpt_path=ckpt_path, view="worker" if worker else "before_hydra")
        except RunDirError as error:
            RunDirGuard._refuse(str(error))

    @staticmethod
    def _refuse(message: str) -> None:
        raise SystemExit(f"Error: {message}")  # printed on stderr, exit status 1
