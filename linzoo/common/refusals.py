"""The machine refusing a write: a full disk, a quota, a read-only disk, no permission.

Such a fault is no bug of linzoo and no traceback helps with it: it is raised as one
:class:`PathRefusedError` (a :class:`~linzoo.common.errors.UserError` and an ``OSError``) whose
message names the path, the cause and the fix. Libraries often bury the ``OSError`` inside their
own error (``torch.save`` on a full disk raises ``RuntimeError: unexpected pos ...`` with
``[Errno 28]`` as its context), so :func:`find_refusal` looks through the whole chain.

    raise PathRefusedError(path="runs/a/last.ckpt", cause=OSError(errno.ENOSPC, "No space left on device"))
    # Cannot write runs/a/last.ckpt: No space left on device (ENOSPC). Fix: free some space ...
"""

from __future__ import annotations

import errno
from pathlib import Path

from linzoo.common.errors import UserError

__all__ = ["REFUSALS", "PathRefusedError", "find_refusal"]

# errno -> the fix a user can make
REFUSALS: dict[int, str] = {
    errno.ENOSPC: "free some space on that disk (df -h shows how much is left), or write elsewhere",
    errno.EDQUOT: "free some of your disk quota, or write elsewhere",
    errno.EFBIG: "write to a file system that takes larger files",
    errno.EROFS: "choose a path on a writable disk",
    errno.EACCES: "choose a path you can write to, or give yourself write permission there",
    errno.EPERM: "choose a path you can write to, or give yourself write permission there",
}


class PathRefusedError(UserError, OSError):
    """The machine refused to write ``path`` (``cause``: the ``OSError`` it raised); ``left_whole``:
    the writer left no partial file behind (linzoo's atomic writer)."""

    def __init__(self, *, path: str | Path, cause: OSError, left_whole: bool = False) -> None:
        code = cause.errno or 0
        reason = cause.strerror or str(cause)
        name = errno.errorcode.get(code, str(code))
        aftermath = " No partial file was left behind." if left_whole else ""
        fix = REFUSALS.get(code, "check the path and its permissions")
        self.message = f"Cannot write {path}: {reason} ({name}).{aftermath} Fix: {fix}."
        super().__init__(self.message)
        self.errno, self.strerror, self.filename = code, reason, str(path)

    def __str__(self) -> str:  # OSError's own would print "[Errno 28] ...": the message instead
        return self.message


def find_refusal(error: BaseException) -> OSError | None:
    """The ``OSError`` of :data:`REFUSALS` that ``error`` is, or was raised from or while handling
    (its ``__cause__`` / ``__context__`` chain), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in REFUSALS:
            return current
        current = current.__cause__ or current.__context__
    return None
