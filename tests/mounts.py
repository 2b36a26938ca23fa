"""Small file systems for the fault tests: a tmpfs of a given size (a disk that fills up), and a
read-only directory that stays read-only for root too (``mount -o ro``), each skipped with the
reason where this machine does not allow it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*arguments: str) -> str | None:
    """Run ``mount`` with ``arguments``; None when it worked, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", *arguments], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"64k"``) mounted at ``path`` for the block; skips where mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    why_not = _mount("-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs", str(path))
    if why_not:
        pytest.skip(f"cannot mount a {size} tmpfs here ({why_not})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def resize(path: Path, *, size: str) -> None:
    """Give the tmpfs at ``path`` another size (its files stay): the user freed some space."""
    why_not = _mount("-o", f"remount,size={size}", str(path))
    assert why_not is None, why_not


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """A directory nobody can write into: ``chmod 555`` for a user, a read-only tmpfs for root
    (whom permissions do not stop); skips where root cannot mount."""
    if os.geteuid() != 0:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with tmpfs(path, size="64k", read_only=True):
        yield path
