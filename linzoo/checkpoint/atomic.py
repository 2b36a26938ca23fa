"""The one atomic writer: every file linzoo writes appears whole or not at all.

A file is written to a temp file in its own directory (``.<name>.<pid>.tmp``: hidden, and never
``*.ckpt``), flushed and fsynced, then ``os.replace``d over the target, and the directory is
fsynced: a reader sees the old file or the new one, never a part. A temp file left by SIGKILL is
never taken for a result, and the next write of the same file removes it (the next checkpoint
save: every checkpoint temp file of that directory).

A write that the machine refuses (full disk, quota, read-only disk, no permission), however the
writing library reports it, is raised as one :class:`~linzoo.common.refusals.PathRefusedError`
naming the file and the cause, after the temp file is removed.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from linzoo.common.refusals import PathRefusedError, find_refusal

log = logging.getLogger(__name__)

__all__ = [
    "atomic_path",
    "atomic_save",
    "atomic_write",
    "remove_stale_temp_files",
    "temp_path",
    "write_text_atomically",
]

TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before the rename: same directory, hidden, ``.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete temp checkpoint files that killed writers left in ``directory``; returns them."""
    directory = Path(directory)
    stale = sorted(directory.glob(f".*.ckpt.*{TEMP_SUFFIX}")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("Removed %d unfinished checkpoint temp file(s) from %s.", len(stale), directory)
    return stale


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that wants a file name (an exporter, a library's
    ``save``); when the block ends well the file is fsynced and becomes ``path`` atomically, else
    it is removed and the previous ``path`` is left as it was. A refused write (full disk,
    read-only, ...) is raised as :class:`PathRefusedError` naming ``path``."""
    path = Path(path)
    temporary = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_writers_temp_files(path)
        try:
            yield temporary
            _fsync(temporary)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise
        _fsync(path.parent)  # make the rename itself durable
    except Exception as error:
        refusal = find_refusal(error)
        if isinstance(error, OSError) and refusal is None and error.filename == str(temporary):
            # another OSError on the hidden temp file (e.g. ENOENT on a file system that takes no
            # new files, such as /proc): name the path the user gave, not the temp file
            raise type(error)(error.errno, error.strerror, str(path)) from error
        if refusal is None or isinstance(error, PathRefusedError):
            raise
        named = path if refusal.filename in (None, str(temporary)) else refusal.filename
        raise PathRefusedError(path=named, cause=refusal, left_whole=True) from error


def _remove_dead_writers_temp_files(path: Path) -> None:
    """Remove the temp files of ``path`` that writers which no longer run left (SIGKILL, abort)."""
    for name in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + f"*{TEMP_SUFFIX}"):
        pid = name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or an odd pid: leave its file
    return True


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then make it ``path`` atomically."""
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        write(file)
    return Path(path)


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's) data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_save(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(checkpoint, path)`` atomically (and stale checkpoint temp files removed first)."""
    remove_stale_temp_files(Path(path).parent)
    return atomic_write(path, lambda file: torch.save(checkpoint, file))


def write_text_atomically(path: str | Path, text: str) -> Path:
    """``path.write_text(text)`` atomically (UTF-8)."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))
