"""Read-only paths (issue 20.14): a run directory or an ``out=`` that cannot be written is refused
in one line (exit 2) before anything is loaded or written; a log file or a library's file that
the disk refuses mid-run names its path instead of a traceback.

Read-only means a read-only tmpfs for root (whom ``chmod`` does not stop) and ``chmod 555``
for other users (tests/mounts.py); the tests skip, saying why, where root cannot mount.
"""

from __future__ import annotations

import errno
import io
import logging
import subprocess
import sys

import pytest

from helpers import ROOT
from linzoo.common.refusals import PathRefusedError
from linzoo.run.errors import naming_refused_writes
from linzoo.run.log_files import quiet_log_files_on_refusal
from linzoo.tools.export import export_checkpoint
from linzoo.tools.sample import sample_checkpoint
from mounts import read_only_dir

READ_ONLY = ("Read-only file system", "Permission denied")


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train", "predict", "export"])  # eval and sample: the same claim
def test_a_read_only_run_directory_is_one_line_for_every_command(tmp_path, script: str) -> None:
    """A run directory on a read-only disk is refused by the run-directory claim, before Hydra
    configures its job log: one line naming the directory (never Hydra's raw "Unable to configure
    handler 'file'"), exit 2, and nothing created."""
    with read_only_dir(tmp_path / "read_only") as locked:
        run_dir = locked / "run"
        arguments = {
            "train": ["trainer.max_epochs=1"],
            "predict": [f"ckpt_path={tmp_path / 'no_such_run'}", f"inputs={tmp_path / 'no_such.png'}"],
            "export": [f"ckpt_path={tmp_path / 'no_such_run'}", f"out={tmp_path / 'm.onnx'}"],
        }[script]
        command = [sys.executable, f"scripts/{script}.py", *arguments, f"hydra.run.dir={run_dir}"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr[-3000:]
        assert len(lines) == 1 and lines[0].startswith(
            f"Error: hydra.run.dir: cannot create or write the run directory {run_dir}"
        )
        assert any(reason in lines[0] for reason in READ_ONLY) and "Unable to configure" not in done.stderr
        assert not run_dir.exists()


def test_export_and_sample_refuse_a_read_only_out_before_loading(tmp_path) -> None:
    """An ``out=`` in a read-only directory is refused before the checkpoint is read (a missing one
    here: loading it would fail differently), naming the setting and the directory."""
    missing = tmp_path / "no_such_run"
    with read_only_dir(tmp_path / "read_only") as locked:
        for out in (locked / "m.onnx", f"{locked}/", locked / "new" / "m.pt2"):
            with pytest.raises(
                ValueError, match=f"out={out}: the directory {locked} is not writable; nothing was loaded"
            ):
                export_checkpoint(ckpt_path=missing, out=out, run_dir=tmp_path)
        with pytest.raises(ValueError, match=f"the directory {locked} is not writable; nothing was loaded"):
            sample_checkpoint(ckpt_path=missing, out=locked / "s.png", run_dir=tmp_path)


def test_a_refusal_inside_a_library_error_names_its_file_or_the_run_directory(tmp_path) -> None:
    """A write refused inside another library's error (Lightning's CSV log, TensorBoard) becomes one
    PathRefusedError naming its file, or the run directory when it names none; other errors pass."""

    def refused(error: OSError, *, wrapped: bool) -> BaseException:
        with pytest.raises(Exception) as caught, naming_refused_writes(run_dir=tmp_path):
            if not wrapped:
                raise error
            try:
                raise error
            except OSError as inner:
                raise RuntimeError("a library gave up") from inner
        return caught.value

    no_name = refused(OSError(errno.ENOSPC, "No space left on device"), wrapped=True)
    assert isinstance(no_name, PathRefusedError) and str(no_name).startswith(f"Cannot write {tmp_path}: No space")
    named = refused(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "csv" / "metrics.csv")), wrapped=True)
    assert str(named).startswith(f"Cannot write {tmp_path / 'csv' / 'metrics.csv'}: Read-only file system (EROFS).")
    plain = refused(OSError(errno.EACCES, "Permission denied", "x.png"), wrapped=False)
    assert type(plain) is PermissionError  # names its file already: the command line reports it as it is
    other = refused(OSError(errno.EIO, "Input/output error"), wrapped=True)
    assert type(other) is RuntimeError  # no refusal a user can fix: a bug's traceback


def test_a_log_file_that_cannot_be_written_warns_once(tmp_path, capsys) -> None:
    """Hydra's job log on a full disk: one warning line naming the file, then the command goes on
    without it (Python's logging printed a traceback for every record)."""

    class FullDisk(io.StringIO):
        def flush(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    logger = logging.getLogger("linzoo.tests.full_log")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())  # after the file handler goes: no last-resort printing
    handler = logging.FileHandler(tmp_path / "train.log", delay=True)
    handler.stream = FullDisk()
    logger.addHandler(handler)
    try:
        quiet_log_files_on_refusal(logger)
        for number in range(3):
            logger.warning("record %d", number)
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"Warning: Cannot write {tmp_path / 'train.log'}: No space left on device (ENOSPC). Fix: free some space "
        "on that disk (df -h shows how much is left), or write elsewhere. That log file stops here; the command goes on."
    ]
    assert handler not in logger.handlers
