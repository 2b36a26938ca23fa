"""Fresh file names: nothing linzoo writes replaces a file that is already there."""

from __future__ import annotations

from pathlib import Path

__all__ = ["fresh_path"]


def fresh_path(path: str | Path) -> Path:
    """``path`` if nothing is there, else ``<stem>-1<suffix>``, ``<stem>-2<suffix>``, ..."""
    path = Path(path)
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
