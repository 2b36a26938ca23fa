"""Where a tool writes its file (export's and sample's ``out=``): checked before any loading work.

A destination that cannot take a new file (under a file, in a read-only or locked directory) is
refused at once, naming the setting, so a user never waits for a net to load and run only to
learn that its result cannot be written. A full disk shows only when writing; then the atomic
writer (linzoo/checkpoint/atomic.py) says so in one line and leaves no partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

from linzoo.common.errors import UserValueError

__all__ = ["check_writable"]


def check_writable(directory: str | Path, *, setting: str) -> None:
    """``directory`` (or, when it does not exist yet, its nearest existing parent) can take a new
    file; else a :class:`UserValueError` naming ``setting`` (``out=...``)."""
    existing = Path(directory)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserValueError(f"{setting}: {existing} is a file, not a directory; nothing can be written under it.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserValueError(
            f"{setting}: the directory {existing} is not writable; nothing was loaded or written. "
            f"Fix: set {setting.split('=')[0]}= to a path you can write to."
        )
