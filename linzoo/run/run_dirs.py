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

A run directory is claimed before anything is written into it (:func:`claim_run_dir`, called
by the guard before Hydra writes ``.hydra/`` and its log): rank 0 creates the directory and
takes an exclusive ``flock`` on ``<run>/.linzoo-run.lock`` (pid, host, command, start time),
held for the whole command and released at its end (the file is then removed; linzoo/run/cli.py).
Of two commands started together into one directory, exactly one gets the lock; the other is
refused (exit 2) before it writes anything. While the lock is held, any other command into that
directory is refused with the live run's pid and host, and is never advised to resume it. A
claim left by a run that was killed (SIGKILL, OOM: the kernel drops the lock with the process)
is taken over on the same host, so resuming in place works. A leftover claim written by
*another* host is not taken over (file locks may not reach across hosts on network file
systems, so linzoo cannot tell whether that run still lives): the refusal names the file to
delete once that run is known to have ended.

A command that a user error stops once its run directory exists (a refused resume, missing
data, a missing checkpoint) leaves no directory behind either: the guard notes which
directories the command is about to create, and :func:`remove_refused_run` (linzoo/run/cli.py)
removes Hydra's files from them and then each one that is left empty. A directory that
existed before the command, and any file that Hydra did not write, are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.common.errors import UserFileExistsError
from linzoo.run.errors import USAGE_ERROR_EXIT_CODE, run_dir_message

log = logging.getLogger(__name__)

Status = Literal["finished", "interrupted", "diverged"]
STATUSES: tuple[str, ...] = ("finished", "interrupted", "diverged")
# What Hydra writes into the run directory of the current job before linzoo's code runs.
HYDRA_OWN_FILES = (".hydra",)
HYDRA_OWN_SUFFIX = ".log"
HYDRA_CONFIG_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # in .hydra/
# The claim of a run directory: locked (flock) by the command that writes into it, for its whole life.
CLAIM_FILE = ".linzoo-run.lock"

# The run directories this process has claimed (absolute path -> the open, locked claim file).
_claims: dict[Path, int] = {}

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
    names = sorted(path.name for path in output_dir.iterdir() if path.name != CLAIM_FILE)
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
    A directory whose claim another live process holds is refused first, naming that process
    (a rank > 0, ``view="worker"``, runs beside its own rank 0's claim and does not look).
    Returns True when ``train`` resumes the unfinished run of ``output_dir`` in place,
    False for a fresh directory.
    """
    output_dir = Path(output_dir)
    if view != "worker":  # a rank > 0 runs while its own rank 0 holds the claim
        holder = live_claim(output_dir)
        if holder is not None:
            raise RunDirError(live_run_message(output_dir, holder))
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
    elif status is None and not any((output_dir / "checkpoints").glob("*.ckpt")):  # none saved (a full disk)
        continue_hint = "It holds no checkpoint to resume from: choose a new hydra.run.dir (or leave it unset)."
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


# ----------------------------------------------------------------- claiming a run directory
def _key(output_dir: str | Path) -> Path:
    return Path(os.path.abspath(output_dir))


def _read_claim(fd: int) -> dict[str, Any]:
    """What a claim file says (pid, host, job, started); {} when empty or unreadable."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def live_run_message(output_dir: Path, holder: dict[str, Any]) -> str:
    """The refusal for a directory that a live command holds: who holds it, and no advice to resume."""
    who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    job = holder.get("job") or "run"
    since = f", {job} started {holder['started']}" if holder.get("started") else ""
    return (
        f"hydra.run.dir={output_dir} is in use by a live run ({who}{since}); nothing was touched. "
        "That run is still writing there: let it end (or stop it yourself) before anything else uses "
        "the directory, or choose a new hydra.run.dir."
    )


def live_claim(output_dir: str | Path) -> dict[str, Any] | None:
    """Who holds the claim of ``output_dir`` when another live process does (its claim file's
    pid, host, job, start time), else None. A claim of this very process does not count."""
    key = _key(output_dir)
    if key in _claims:
        return None
    try:
        fd = os.open(key / CLAIM_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _wait_for_claim_text(fd)
        except OSError:
            return None  # no file locks here: claim_run_dir decides by pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _wait_for_claim_text(fd: int) -> dict[str, Any]:
    """The claim of a holder that may have just taken the lock and not yet written its details."""
    for _ in range(20):
        holder = _read_claim(fd)
        if holder:
            return holder
        time.sleep(0.05)
    return {}


def claim_run_dir(output_dir: str | Path, *, job: str) -> dict[str, Any] | None:
    """Claim ``output_dir`` for this process before anything is written into it: create it and
    take an exclusive ``flock`` on its :data:`CLAIM_FILE`, kept until :func:`release_run_claims`.

    Raises :class:`RunDirError` when a live process holds the claim, or when a leftover claim
    comes from another host. Returns the stale claim taken over (a run killed on this host), or
    None. Claiming a directory this process already holds does nothing.
    """
    key = _key(output_dir)
    if key in _claims:
        return None
    key.mkdir(parents=True, exist_ok=True)
    path = key / CLAIM_FILE
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        locks_work = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _wait_for_claim_text(fd)
            os.close(fd)
            raise RunDirError(live_run_message(key, holder)) from None
        except OSError as error:  # a file system without locks: decide by pid alone
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            locks_work = False
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if not same_file:  # released (removed) by its holder between our open and our lock
            os.close(fd)
            continue
        break
    earlier = _read_claim(fd)
    if earlier and earlier.get("host") != host:
        os.close(fd)
        raise RunDirError(
            f"hydra.run.dir={key} holds the claim of pid {earlier.get('pid', '?')} on host "
            f"{earlier.get('host', '?')} (started {earlier.get('started', '?')}), which this host ({host}) "
            f"cannot check; nothing was touched. If that run has ended (it was killed without releasing "
            f"its claim), delete {path} and run again; otherwise choose a new hydra.run.dir."
        )
    if earlier and not locks_work and earlier.get("pid") != os.getpid() and _pid_alive(earlier.get("pid")):
        os.close(fd)
        raise RunDirError(live_run_message(key, earlier))
    claim = {
        "pid": os.getpid(),
        "host": host,
        "job": job,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(claim) + "\n").encode())
        os.fsync(fd)
    except OSError:  # a full disk: no claim is left behind, as no claim was taken
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        raise
    _claims[key] = fd
    if earlier:
        log.warning(
            "Took over the claim of %s left by pid %s (started %s), which no longer runs.",
            key,
            earlier.get("pid", "?"),
            earlier.get("started", "?"),
        )
        return earlier
    return None


def release_run_claims() -> None:
    """Release every claim this process holds: remove the claim file (while still locked, so a
    waiting command sees it gone and claims afresh) and drop the lock."""
    while _claims:
        key, fd = _claims.popitem()
        path = key / CLAIM_FILE
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                path.unlink()
        with contextlib.suppress(OSError):
            os.close(fd)


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
    release_run_claims()  # the command ends here; its claim file would keep the directory
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
    """Hydra callback: claims the run directory and checks the run-directory rules, before
    Hydra writes anything; notes the directories that this command creates (for
    :func:`remove_refused_run`).

    Hydra calls ``on_run_start`` after composing the config and before ``run_job`` creates
    the directory and writes ``.hydra/{config,hydra,overrides}.yaml`` and the job log
    (hydra/_internal/hydra.py, hydra/core/utils.py). Rank 0 claims the directory first
    (:func:`claim_run_dir`; released when the command ends, linzoo/run/cli.py), then checks
    it. Hydra turns exceptions raised by callbacks into warnings, so a refusal prints its one
    ``Error:`` line and leaves with ``SystemExit(2)``, the status of every user error.
    Processes other than rank 0 of a distributed job neither claim (rank 0 holds the claim)
    nor write ``.hydra/``; they check only for another run's ``metrics.json`` and checkpoints.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        worker = is_launched_worker()
        if worker:  # rank 0 writes .hydra/; the others would race it
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
        output_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        new_dirs = [] if worker else missing_dirs(output_dir)
        if not worker:
            self._claim(output_dir, job=str(config.get("task_name", "train")), new_dirs=new_dirs)
        try:
            self._check(output_dir, config, worker=worker)
        except SystemExit:
            release_run_claims()
            raise
        _new_dirs[:] = new_dirs  # what remove_refused_run may remove

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep goes into a fresh sweep directory (its job directories are made inside it),
        claimed like a run directory."""
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        contents = run_contents(sweep_dir, view="before_hydra")
        if not contents:
            self._claim(sweep_dir, job="sweep")
            contents = run_contents(sweep_dir, view="before_hydra")  # another sweep may have started first
            if contents:
                release_run_claims()
        if contents:
            self._refuse(
                f"hydra.sweep.dir={sweep_dir} is not empty ({', '.join(contents[:6])}); nothing was touched. "
                "Leave hydra.sweep.dir unset or name a directory that does not exist yet."
            )

    @staticmethod
    def _claim(output_dir: Path, *, job: str, new_dirs: list[Path] | None = None) -> None:
        """Claim ``output_dir``; a refusal removes the ``new_dirs`` (innermost first) that the
        attempt created, when they are empty."""
        try:
            claim_run_dir(output_dir, job=job)
        except RunDirError as error:
            RunDirGuard._refuse(str(error))
        except OSError as error:  # cannot create the directory or its claim file (read-only, full, /proc/...)
            for directory in new_dirs or []:
                try:
                    directory.rmdir()
                except OSError:
                    break  # absent (never made) or not empty: it and its parents stay
            RunDirGuard._refuse(run_dir_message(error, run_dir=output_dir))

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
        """One ``Error:`` line on stderr and exit status 2, as every user error."""
        sys.stderr.write(f"Error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(USAGE_ERROR_EXIT_CODE)
