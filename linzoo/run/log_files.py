"""Log files on a full or read-only disk: one warning line, then the run goes on without them.

Python's logging reports a failed write of a log record by printing a traceback to stderr
(``--- Logging error ---``), once for every record: on a full disk, dozens of tracebacks around
the one line that matters. :func:`quiet_log_files_on_refusal` makes each file handler of the root
logger (Hydra's job log, ``<run>/<job>.log``) say it once instead, and stop writing; any other
logging error is reported as logging does.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from linzoo.common.refusals import PathRefusedError, find_refusal

__all__ = ["quiet_log_files_on_refusal"]


class _StopOnRefusal:
    """``handler.handleError``: a refused write (full disk, read-only) removes ``handler`` with one warning."""

    def __init__(self, handler: logging.FileHandler, logger: logging.Logger) -> None:
        self.handler, self.logger = handler, logger

    def __call__(self, record: logging.LogRecord) -> None:
        refusal = find_refusal(sys.exc_info()[1] or Exception())
        if refusal is None:
            logging.FileHandler.handleError(self.handler, record)
            return
        self.logger.removeHandler(self.handler)
        with contextlib.suppress(OSError):
            self.handler.close()
        message = PathRefusedError(path=self.handler.baseFilename, cause=refusal)
        sys.stderr.write(f"Warning: {message} That log file stops here; the command goes on.\n")


def quiet_log_files_on_refusal(logger: logging.Logger | None = None) -> None:
    """Give every file handler of ``logger`` (default: the root logger) :class:`_StopOnRefusal`."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and not isinstance(handler.handleError, _StopOnRefusal):
            handler.handleError = _StopOnRefusal(handler, logger)  # type: ignore[method-assign]
