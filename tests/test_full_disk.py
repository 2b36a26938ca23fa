"""A full disk (issue 20.13): every write that the disk refuses ends the command with one line that
names the file and the cause (exit 2), leaves no partial or temp file, and a rerun then works.

Three ways to fill a disk: a simulated ``ENOSPC`` (runs everywhere), a file-size limit
(``RLIMIT_FSIZE``: the kernel refuses with ``EFBIG``; runs everywhere on Linux), and a real small
tmpfs (skipped where this machine does not allow mounting).
"""

from __future__ import annotations

import contextlib
import errno
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import ROOT, SHORT, data_overrides, tiny
from linzoo.checkpoint.atomic import atomic_save, atomic_write
from linzoo.common.errors import UserError
from linzoo.common.refusals import PathRefusedError
from linzoo.tools.export import FORMATS, export_checkpoint
from mounts import resize, tmpfs
from trained import train_run

FULL = "No space left on device (ENOSPC)"

# scripts/train.py, with every checkpoint written onto a disk that is full (the file opens; each write raises ENOSPC).
FULL_DISK_TRAIN = """
import errno, sys
import linzoo.checkpoint.atomic as atomic

class FullDisk:
    def __init__(self, file): self.file = file
    def write(self, data): raise OSError(errno.ENOSPC, "No space left on device")
    def __getattr__(self, name): return getattr(self.file, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self.file.close()

def open_on_a_full_disk(path, mode="r", *args, **kwargs):
    file = open(path, mode, *args, **kwargs)
    return FullDisk(file) if ".ckpt." in str(path) else file

atomic.open = open_on_a_full_disk
from linzoo.run.cli import train
sys.argv = ["train.py", *sys.argv[1:]]
train()
"""


def run(command: list[str], *, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in the repository; with ``file_size_limit``, no file may grow past that many bytes."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit if file_size_limit else None,
    )


def assert_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2, no traceback, exactly one ``Error:`` line, holding every one of ``expected``."""
    output = done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output and "Logging error" not in output, output[-3000:]
    assert len(errors) == 1 and all(text in errors[0] for text in expected), done.stderr[-3000:]
    return errors[0]


def leftovers(directory: Path) -> list[str]:
    """Temp files (``.<name>.<pid>.tmp``) anywhere under ``directory``."""
    return sorted(path.name for path in directory.rglob("*.tmp"))


def train_command(run_dir: Path, data_root: Path, *, script: str = "scripts/train.py") -> list[str]:
    overrides = [*tiny("mlp"), *data_overrides(data_root), *SHORT, "trainer.max_epochs=1"]
    head = [sys.executable, "-c", FULL_DISK_TRAIN] if script == "simulated" else [sys.executable, script]
    return [*head, *overrides, f"hydra.run.dir={run_dir}"]


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("full_disk") / "mlp", fake_mnist_root, "mlp")


def test_a_refusal_buried_in_a_library_error_is_one_line_naming_the_file(tmp_path) -> None:
    """The atomic writer turns ENOSPC, even inside another error (torch.save's "unexpected pos"),
    into one PathRefusedError naming the file and the cause; no temp file stays; the rerun works."""
    target = tmp_path / "last.ckpt"

    def torch_like_write(file) -> None:
        file.write(b"half a checkpoint")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 12672 vs 12566") from None

    with pytest.raises(PathRefusedError) as caught:
        atomic_write(target, torch_like_write)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert message.startswith(f"Cannot write {target}: {FULL}.") and "\n" not in message
    assert list(tmp_path.iterdir()) == []
    atomic_save({"weights": torch.ones(2)}, target)
    assert torch.load(target, weights_only=True)["weights"].tolist() == [1.0, 1.0]


def test_a_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path) -> None:
    """A writer killed mid-write (SIGKILL, abort) leaves a hidden temp file; the next write of
    that file removes it, while a live writer's temp file stays."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".model.onnx.{int(dead.stdout)}.tmp"
    live = tmp_path / f".model.onnx.{1}.tmp"  # pid 1 always runs
    stale.write_bytes(b"trunc")
    live.write_bytes(b"busy")
    atomic_write(tmp_path / "model.onnx", lambda file: file.write(b"whole"))
    assert sorted(path.name for path in tmp_path.iterdir()) == [live.name, "model.onnx"]


@pytest.mark.slow
def test_training_on_a_simulated_full_disk_is_one_line(fake_mnist_root, tmp_path) -> None:
    """Training whose checkpoint hits ENOSPC ends with one line naming the checkpoint (not 100 lines
    of torch's "unexpected pos"), exit 2, no partial checkpoint; the same command on a disk with
    space then trains to the end."""
    run_dir = tmp_path / "run"
    done = run(train_command(run_dir, fake_mnist_root, script="simulated"))
    line = assert_one_line(done, f"{run_dir / 'checkpoints'}", ".ckpt", FULL, "No partial file was left behind")
    assert "unexpected pos" not in line and leftovers(run_dir) == []
    assert not list((run_dir / "checkpoints").glob("*.ckpt")) and not (run_dir / "metrics.json").exists()
    again = run(train_command(tmp_path / "rerun", fake_mnist_root))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "rerun" / "metrics.json").is_file()


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """In this process, no file may grow past ``limit`` bytes (the soft limit; restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.slow
def test_exports_past_a_file_size_limit_are_one_line_and_leave_nothing(mlp_run, tmp_path) -> None:
    """Every export format, refused by the kernel (a file-size limit: EFBIG), raises one
    PathRefusedError naming the file, never an abort (TorchScript and .pt2 used to exit 134), and
    leaves no file; from the command line that is one line and exit 2; the rerun without the limit
    writes the file at the same name."""
    for format in FORMATS:
        out = tmp_path / format / f"model{FORMATS[format]}"
        if format == "torchscript":  # the command line, where an abort would show as exit 134
            command = [sys.executable, "scripts/export.py", f"ckpt_path={mlp_run}", f"out={out}"]
            done = run([*command, f"hydra.run.dir={tmp_path / 'run'}"], file_size_limit=60_000)
            assert_one_line(done, f"Cannot write {out}: File too large (EFBIG)", "No partial file was left behind")
        else:
            expected = re.escape(f"Cannot write {out}: File too large (EFBIG). No partial file was left behind.")
            with pytest.raises(PathRefusedError, match=f"^{expected}"), file_size_limit(60_000):
                export_checkpoint(ckpt_path=mlp_run, out=out, run_dir=tmp_path)
        assert list(out.parent.iterdir()) == [], format
        assert export_checkpoint(ckpt_path=mlp_run, out=out, run_dir=tmp_path).path == out
        assert sorted(path.name for path in out.parent.iterdir()) == [out.name]


@pytest.mark.slow
def test_training_on_a_full_tmpfs_is_one_line_and_the_rerun_trains(fake_mnist_root, tmp_path) -> None:
    """On a real 400 kB tmpfs, training stops at the first checkpoint that does not fit: one line
    naming it with ENOSPC, exit 2, no temp file; once the disk has room, a rerun on it finishes."""
    with tmpfs(tmp_path / "disk", size="400k") as disk:
        done = run(train_command(disk / "run", fake_mnist_root))
        assert_one_line(done, f"{disk / 'run' / 'checkpoints'}", ".ckpt", FULL)
        assert leftovers(disk) == []
        resize(disk, size="4m")
        again = run(train_command(disk / "rerun", fake_mnist_root))
        assert again.returncode == 0, again.stderr[-3000:]
        assert (disk / "rerun" / "metrics.json").is_file() and leftovers(disk) == []


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "torchscript"])  # the file-size-limit test covers all four
def test_an_export_onto_a_full_tmpfs_is_one_line_and_leaves_nothing(mlp_run, tmp_path, format: str) -> None:
    """On a real 64 kB tmpfs, an ONNX or TorchScript export ends in one line with ENOSPC (TorchScript
    used to abort with exit 134, both left a truncated file); the disk is left empty, and once it
    has room the same out= is written."""
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        out = disk / f"model{FORMATS[format]}"
        command = [sys.executable, "scripts/export.py", f"ckpt_path={mlp_run}", f"out={out}"]
        done = run([*command, f"hydra.run.dir={tmp_path / 'run'}"])
        assert_one_line(done, f"Cannot write {out}: {FULL}")
        assert list(disk.iterdir()) == []
        resize(disk, size="2m")
        assert export_checkpoint(ckpt_path=mlp_run, out=out, run_dir=tmp_path).path == out
        assert [path.name for path in disk.iterdir()] == [out.name]


def test_a_run_directory_on_a_full_disk_leaves_no_claim(tmp_path, monkeypatch) -> None:
    """When the disk is full as a command claims its run directory, the claim file is not left
    behind (it would look like a killed run's claim) and the error is the disk's."""
    from linzoo.run import run_dirs

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_dirs.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        run_dirs.claim_run_dir(tmp_path / "run", job="train")
    assert list((tmp_path / "run").iterdir()) == [] and not run_dirs._claims


@pytest.mark.slow
def test_a_command_into_a_full_tmpfs_is_refused_and_leaves_nothing(tmp_path) -> None:
    """On a real tmpfs that is already full, train is refused at its run-directory claim: one line
    naming the directory and ENOSPC with the fix, exit 2, and no directory or claim file left."""
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            for _ in range(64):  # as much as fits
                filler.write(b"\0" * 4096)
                filler.flush()
        command = [sys.executable, "scripts/train.py", f"hydra.run.dir={disk / 'new' / 'run'}"]
        done = run(command)
        assert_one_line(
            done, f"cannot create or write the run directory {disk / 'new' / 'run'} (No space left", "df -h"
        )
        assert [path.name for path in disk.iterdir()] == ["filler"]
