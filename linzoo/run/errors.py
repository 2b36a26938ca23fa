"""One clear message for every mistake a user can make, and the entry points' error reporting.

A mistake in a command line or a config (a wrong type, a misspelled key or option, a value
out of range, a missing or corrupt file) is reported as one message that names the setting,
the value, what is expected and the fix, and the command exits with status 2; the full
traceback only with ``HYDRA_FULL_ERROR=1``. What counts as a user's mistake is decided by the
error's type, never by where it was raised: linzoo's :class:`~linzoo.common.errors.UserError`
(raised on purpose, with the fix in its message), Hydra's and OmegaConf's composition errors,
and the machine refusing a path (an ``OSError`` naming a file: a full disk, a read-only
folder). Anything else is a bug and keeps Hydra's traceback and status 1.

A refused write gets status 2 too: it is no bug of linzoo but a fault the user fixes (free space,
another path), like the other faults that exit 2, so a script tells "fix your side and rerun"
(2) from "report a bug" (1). :func:`naming_refused_writes` finds such a refusal even inside
another library's error (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from linzoo.common.errors import UserError, did_you_mean, problem_and_expected
from linzoo.common.refusals import REFUSALS, PathRefusedError, find_refusal

__all__ = [
    "USAGE_ERROR_EXIT_CODE",
    "exiting_on_user_error",
    "naming_refused_writes",
    "reporting_user_errors",
    "user_message",
]

USAGE_ERROR_EXIT_CODE = 2  # as argparse and most Unix tools use for bad usage

_LINZOO_DIR = Path(__file__).resolve().parents[1]  # the linzoo package


# ------------------------------------------------------------------- classifying errors
def user_message(error: BaseException) -> str | None:
    """The one-line message for an error a user caused, or None for anything else (a bug)."""
    from hydra.errors import (
        ConfigCompositionException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, InstantiationException):
        if error.__cause__ is not None:
            return user_message(error.__cause__)
        return _one_line(str(error))
    if isinstance(error, MissingConfigException):
        return _missing_option_message(error)
    if isinstance(error, OverrideParseException):
        return (
            f"Cannot read the command-line override: {_one_line(str(error).split('See https')[0])}. "
            "Fix: write key=value, lists as key=[1,2], and quote values with spaces or special "
            "characters ('key=\"a b\"')."
        )
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        if isinstance(cause, OmegaConfBaseException):
            return _omegaconf_message(cause, override=_override_of(str(error)))
        return _one_line(str(error))
    if isinstance(error, OmegaConfBaseException):
        return _omegaconf_message(error)
    if isinstance(error, UserError):
        return _one_line(str(error))
    if isinstance(error, OSError) and _raised_before_the_task(error):
        return run_dir_message(error)
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return _path_refused_message(error)
    return None


_PATH_FIXES = {**REFUSALS, errno.ENOENT: "check the path"}


def _path_refused_message(error: OSError) -> str:
    """The machine refused a path (full disk, read-only, missing): one line with the path and the cause."""
    fix = _PATH_FIXES.get(error.errno or 0, "check the path and its permissions")
    return f"{error.filename}: {error.strerror}. Fix: {fix}."


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _raised_before_the_task(error: BaseException) -> bool:
    """Whether Hydra raised it while preparing the run (in ``run_job``, before linzoo's task ran):
    no frame of linzoo's code lies between ``run_job`` and the raise."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_name, tb.tb_frame.f_code.co_filename))
        tb = tb.tb_next
    names = [name for name, _ in frames]
    if "run_job" not in names:
        return False
    inside = frames[names.index("run_job") :]
    return not any(Path(filename).resolve().is_relative_to(_LINZOO_DIR) for _, filename in inside)


def run_dir_message(error: OSError, *, run_dir: str | Path | None = None) -> str:
    """The refusal of a run directory that cannot be created or written (``run_dir``: the directory,
    when ``error`` names no file)."""
    where = error.filename or run_dir or "(hydra.run.dir)"
    reason = error.strerror or type(error).__name__
    fix = REFUSALS.get(error.errno or 0, "choose a directory you can write to")
    return (
        f"hydra.run.dir: cannot create or write the run directory {where} ({reason}). "
        f"Fix: {fix}, e.g. hydra.run.dir=outputs/my_run."
    )


def _override_of(message: str) -> str | None:
    match = re.search(r"(?:override|merging override) '?([^'\s]+=[^\n']*)", message)
    return match.group(1) if match else None


_TYPE_WORDS = {
    "Integer": "an integer",
    "int": "an integer",
    "Float": "a number",
    "float": "a number",
    "bool": "true or false",
    "Boolean": "true or false",
    "string": "a string",
    "String": "a string",
}


def _omegaconf_message(error: Any, *, override: str | None = None) -> str:
    """Messages for OmegaConf's key, type and missing-value errors, with the closest key."""
    from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

    full_key = str(getattr(error, "full_key", "") or "")
    key = str(getattr(error, "key", "") or "")
    first_line = str(getattr(error, "msg", "") or str(error)).splitlines()[0]
    if (
        isinstance(error, ConfigKeyError)
        or "not in struct" in first_line
        or re.search(r"Key '.*' not in '", first_line)
    ):
        parent = getattr(error, "parent_node", None)
        valid = [str(name) for name in parent.keys()] if parent is not None and hasattr(parent, "keys") else []  # noqa: SIM118
        section = full_key.rsplit(".", 1)[0] if "." in full_key else ""
        prefix = f"{section}." if section else ""
        valid_shown = ", ".join(sorted(name for name in valid if not name.startswith("_")))
        hint = did_you_mean(key, valid, prefix=prefix)
        where = f"in {section}" if section else "at the top level"
        return (
            f"Unknown setting {full_key or key} ({where}).{hint} Valid keys {where}: {valid_shown}. "
            "Fix: correct the spelling (Hydra's '+key=value' only adds a new key, which no linzoo "
            "code would read)."
        )
    if isinstance(error, MissingMandatoryValue):
        return f"{full_key} is required but was not given. Fix: add {full_key}=... to the command."
    if isinstance(error, ValidationError):
        match = re.search(
            r"Value '(.*?)' (?:of type '\w+' )?(?:could not be converted to (\w+)|is not a valid (\w+))", first_line
        )
        if match:
            value, kind = match.group(1), match.group(2) or match.group(3)
            expected = _TYPE_WORDS.get(kind, kind)
            problem = "not a number" if kind in _NUMBER_TYPES and not _reads_as_number(value) else None
            return (
                f"{full_key}={value}: {problem_and_expected(problem, expected)}. "
                f"Fix: {full_key}=<{expected}>, e.g. {_example(kind)}."
            )
        value = override.split("=", 1)[1] if override else "?"
        return f"{full_key}={value}: {first_line}. Fix: give {full_key} a value of the type its default has."
    return _one_line(str(error))


_NUMBER_TYPES = ("Integer", "int", "Float", "float")


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _example(kind: str) -> str:
    return {"Integer": "1", "int": "1", "Float": "0.1", "float": "0.1", "bool": "true", "Boolean": "true"}.get(
        kind, "'text'"
    )


def _missing_option_message(error: Any) -> str:
    missing = str(getattr(error, "missing_cfg_file", "") or "")
    options = list(getattr(error, "options", None) or [])
    if "/" in missing and options:
        # The group Hydra searched ("data" for data=schema/datamodule, whose option has a slash).
        searched = re.search(r"Available options in '([^']+)'", str(error))
        group = searched.group(1) if searched and missing.startswith(f"{searched.group(1)}/") else None
        group, option = (group, missing[len(group) + 1 :]) if group else missing.rsplit("/", 1)
        return (
            f"{group}={option}: no such option.{did_you_mean(option, options)} "
            f"Expected one of: {', '.join(options)}. Fix: {group}=<one of those>."
        )
    return _one_line(str(error).split("Config search path")[0])


# ------------------------------------------------------------------------ reporting
_full_traceback_requested: bool | None = None  # what the user asked for, while reporting_user_errors runs


def full_traceback_wanted() -> bool:
    """Whether the user set ``HYDRA_FULL_ERROR=1`` (every error then keeps its traceback)."""
    if _full_traceback_requested is not None:
        return _full_traceback_requested
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def _report(error: BaseException) -> None:
    message = user_message(error)
    if message is None:
        raise error
    sys.stderr.write(f"Error: {message}\n")
    sys.exit(USAGE_ERROR_EXIT_CODE)


@contextlib.contextmanager
def exiting_on_user_error(*, cleanup: Callable[[], Any] | None = None) -> Iterator[None]:
    """Around a command's body: a user error prints one line and exits 2 (SystemExit passes
    through Hydra's job runner, which would otherwise print its own "Error executing job" line).
    ``cleanup`` runs first, for user errors only (linzoo/run/cli.py: remove the run directory that
    the stopped command created)."""
    try:
        yield
    except Exception as error:
        if user_message(error) is None:
            raise
        if cleanup is not None:
            cleanup()
        if full_traceback_wanted():
            raise
        _report(error)


@contextlib.contextmanager
def naming_refused_writes(*, run_dir: str | Path | None) -> Iterator[None]:
    """Around a command's body: a write that the machine refused (full disk, quota, read-only,
    no permission) where linzoo's atomic writer did not already name it (a library's own file:
    Lightning's CSV log, TensorBoard's events; an ``OSError`` inside another error) becomes one
    :class:`PathRefusedError` naming the file, or ``run_dir`` when the error names none."""
    try:
        yield
    except Exception as error:
        refusal = find_refusal(error)
        if refusal is None or isinstance(error, UserError):
            raise
        if refusal is error and refusal.filename is not None:
            raise  # names its file already: user_message reports it as it is
        raise PathRefusedError(path=refusal.filename or run_dir or "a file", cause=refusal) from error


@contextlib.contextmanager
def reporting_user_errors() -> Iterator[None]:
    """Around ``hydra.main``: a user error that Hydra meets while composing the config (a
    misspelled key or option, a wrong type) prints one line and exits 2, like those of the task.

    Hydra reports such errors itself (a message or a trimmed traceback, exit 1) unless its
    documented switch ``HYDRA_FULL_ERROR=1`` is set, with which it raises them. So the block
    sets that switch, reports the user errors it catches, and re-raises everything else with
    its full traceback. Whether the *user* set ``HYDRA_FULL_ERROR`` is remembered first: then
    every error keeps its traceback, as Hydra's own behaviour.
    """
    global _full_traceback_requested
    requested, previous = full_traceback_wanted(), os.environ.get("HYDRA_FULL_ERROR")
    _full_traceback_requested = requested
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except Exception as error:
        if requested or user_message(error) is None:
            raise
        _report(error)
    finally:
        _full_traceback_requested = None
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
