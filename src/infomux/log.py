"""Logging set-up for the command line.

Everything goes to stderr. Format: ``infomux: message`` for info,
``infomux: warning: message`` for warnings and errors, and with ``-v``
``infomux: debug: [module] message``. Verbosity: ``-q`` shows errors only; the
default shows info; ``-v`` shows debug, including whisper.cpp's own log
(logger ``infomux.whisper``), which is otherwise hidden.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

ROOT_LOGGER = "infomux"
NATIVE_LOGGER = "infomux.whisper"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is at the time of the call."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"infomux: {record.levelname.lower()}: {message}"
        if record.levelno < logging.INFO:
            name = record.name.removeprefix("infomux.")
            return f"infomux: debug: [{name}] {message}"
        return f"infomux: {message}"


_handler: logging.Handler | None = None


def level_for(verbosity: int) -> int:
    """Map ``-q`` (-1), default (0) and ``-v`` (1 or more) to a logging level."""
    if verbosity < 0:
        return logging.ERROR
    if verbosity == 0:
        return logging.INFO
    return logging.DEBUG


def setup_logging(verbosity: int = 0) -> None:
    """Install (or re-configure) the stderr handler on the ``infomux`` logger."""
    global _handler
    logger = logging.getLogger(ROOT_LOGGER)
    if _handler is None:
        _handler = _StderrHandler()
        _handler.setFormatter(_Formatter())
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    level = level_for(verbosity)
    logger.setLevel(level)
    logger.propagate = False
    # whisper.cpp talks a lot; only -v shows it.
    logging.getLogger(NATIVE_LOGGER).setLevel(logging.DEBUG if verbosity > 0 else logging.CRITICAL)


def teardown_logging() -> None:
    """Remove the handler installed by :func:`setup_logging` (for in-process callers)."""
    global _handler
    if _handler is not None:
        logger = logging.getLogger(ROOT_LOGGER)
        logger.removeHandler(_handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        logging.getLogger(NATIVE_LOGGER).setLevel(logging.NOTSET)
        _handler = None
