"""The errors a user can cause and fix, for every layer of linzoo (plain Python: no torch, no Hydra).

A mistake a user can make (a bad value, a wrong input, a missing or taken file) is raised as a
:class:`UserError`, whose message names the setting, what is expected and the fix. The command
line (``linzoo.run.errors``) prints such an error as one line and exits 2; any other exception is
a bug and keeps its traceback, whatever its type, so a linzoo bug that raises ``ValueError`` is
never shown as a user's mistake.

    raise ConfigError("optimizer.lr", 0, "a number > 0", "optimizer.lr=1e-3")
    # optimizer.lr=0: expected a number > 0. Fix: optimizer.lr=1e-3.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "UserError",
    "UserFileExistsError",
    "UserFileNotFoundError",
    "UserModuleNotFoundError",
    "UserTypeError",
    "UserValueError",
    "closest",
    "did_you_mean",
    "format_value",
    "not_a_number",
    "problem_and_expected",
]


class UserError(Exception):
    """A mistake the user can fix; its message says how. Mixed into the built-in types below, so
    ``except ValueError`` and ``pytest.raises(ValueError)`` keep working."""


class UserValueError(UserError, ValueError):
    """A value (an option, an input, a file's content) that cannot work."""


class UserTypeError(UserError, TypeError):
    """An input of the wrong type (a uint8 image where floats are expected, ...)."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named that is not there."""


class UserModuleNotFoundError(UserError, ModuleNotFoundError):
    """An optional dependency that a feature needs is not installed; the message names the pip command."""


class UserFileExistsError(UserError, FileExistsError):
    """A destination that already holds something the user made: never overwritten."""


class ConfigError(UserValueError):
    """A setting whose value cannot work: ``<setting>=<value>: expected <what>. Fix: <fix>.``

    ``number=True`` for a setting that takes a number (or a list of numbers): a value that is
    none says so first, ``optimizer.lr=abc: not a number; expected a learning rate > 0. ...``.
    """

    def __init__(
        self, setting: str, value: Any, expected: str, fix: str | None = None, *, number: bool = False
    ) -> None:
        self.setting, self.value, self.expected, self.fix = setting, value, expected, fix
        problem = not_a_number(value) if number else None
        message = f"{setting}={format_value(value)}: {problem_and_expected(problem, expected)}."
        if fix:
            message += f" Fix: {fix.rstrip('.')}."
        super().__init__(message)


def problem_and_expected(problem: str | None, expected: str) -> str:
    """``expected <what>``, after ``<problem>; `` when there is one (``not a number`` alone for ``a number``)."""
    if problem is None:
        return f"expected {expected}"
    return problem if expected == "a number" else f"{problem}; expected {expected}"


def not_a_number(value: Any) -> str | None:
    """``"not a number"`` (``"not a list of numbers"`` for a list holding another value) when
    ``value`` is no number (bools and numeric strings are none), else None."""

    def is_number(item: Any) -> bool:
        return isinstance(item, (int, float)) and not isinstance(item, bool)

    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return None if all(is_number(item) for item in value) else "not a list of numbers"
    return None if is_number(value) else "not a number"


def format_value(value: Any) -> str:
    """A value as a user would type it on the command line (``null``, ``true``, ``[1,2]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return str(value)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word`` (difflib, ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str], *, prefix: str = "") -> str:
    """`` Did you mean <prefix><match>?`` or ``""``."""
    match = closest(word, choices)
    return f" Did you mean {prefix}{match}?" if match else ""
