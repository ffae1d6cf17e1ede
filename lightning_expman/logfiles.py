"""The per-level log files (``experiment.log``, ``trial.log``, ``run.log``): one way to write them.

Everything that writes these files goes through stdlib :mod:`logging` and this module: the
workspace's :class:`~lightning_expman.workspace.Environment` loggers, the ``log`` tracker
(:mod:`lightning_expman.tracking.log`) and Lightning's own lines copied into a run's log. So:

* **one handler per file**: every writer of a file shares its one ``FileHandler`` (reference
  counted), so lines written by different writers land in the order they were written;
* **one format**, :data:`LOG_FORMAT`, e.g.
  ``2026-11-22 13:05:01,123 INFO [small/run_1] TRIAL_RUN start repeat=1 seed=42``, where the
  bracket names the writer (a run, a trial, or a foreign logger such as ``lightning.pytorch``);
* **masked**: every handler carries :class:`~lightning_expman.masking.MaskingFilter`;
* **no leak**: a file is closed (flushed first) when its last writer closes its logger, so a
  process running 100 runs does not hold 100 files open.

Loggers are built with ``logging.Logger(name)``, not ``logging.getLogger``: ``getLogger`` keeps
every logger (and thereby its handlers) for the life of the process and gives two writers with the
same name the same logger; a run's logger must go with its run.

Example:
    >>> logger = open_logger("small/run_1", "outputs/run_1/logs/run.log", console=True)
    >>> logger.info("training")
    >>> close_logger(logger)   # flushed; the file is closed once no other writer holds it
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

from .enums import Level
from .masking import MaskingFilter

__all__ = ["LOG_FILES", "LOG_FORMAT", "close_logger", "open_log_files", "open_logger"]

LOG_FILES = {Level.EXPERIMENT: "experiment.log", Level.TRIAL: "trial.log", Level.TRIAL_RUN: "run.log"}
"""The log file of each level, inside its ``logs/`` folder."""

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
"""The one format of every line in the log files and of their console copies."""

_lock = threading.Lock()
_files: dict[str, tuple[logging.FileHandler, int]] = {}  # absolute path -> (its handler, writers)


class _ConsoleFilter(logging.Filter):
    """Keeps lines logged with ``extra={"console": False}`` (per-step lines) off the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


def _formatted(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(MaskingFilter())  # no secret in a log line (lightning_expman.masking)
    return handler


def _acquire(path: str | os.PathLike[str]) -> logging.FileHandler:
    key = os.path.abspath(path)
    with _lock:
        handler, writers = _files.get(key, (None, 0))
        if handler is None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            handler = _formatted(logging.FileHandler(key, mode="a", encoding="utf-8"))
        _files[key] = (handler, writers + 1)
        return handler  # type: ignore[return-value]


def _release(handler: logging.FileHandler) -> None:
    with _lock:
        key = handler.baseFilename
        current, writers = _files.get(key, (None, 0))
        if current is not handler:  # not shared (already closed by its last writer)
            handler.close()
            return
        if writers > 1:
            _files[key] = (handler, writers - 1)
            handler.flush()
            return
        del _files[key]
    handler.close()  # flushes


def open_logger(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    level: int = logging.INFO,
    console: bool = False,
) -> logging.Logger:
    """A new logger writing ``path`` through the file's shared handler (and stderr when ``console``).

    Args:
        name: shown in brackets on each line (the run, trial or experiment).
        path: the log file (appended to; its folder is created), or None for the console only.
        level: the lowest level written (``logging.DEBUG`` with env.yaml's ``debug: true``).
        console: copy the lines to stderr, except those logged with ``extra={"console": False}``.

    Returns:
        A logger that does not propagate; release it with :func:`close_logger`.
    """
    logger = logging.Logger(name, level)
    logger.propagate = False
    if path is not None:
        logger.addHandler(_acquire(path))
    if console:
        stream = _formatted(logging.StreamHandler(sys.stderr))
        stream.addFilter(_ConsoleFilter())
        logger.addHandler(stream)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Detach and flush ``logger``'s handlers; a file is closed when its last writer lets go."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            _release(handler)
        else:
            handler.flush()
            handler.close()  # a StreamHandler leaves sys.stderr open


def open_log_files() -> list[str]:
    """The log files held open by this module now (for checks that nothing leaks)."""
    with _lock:
        return sorted(_files)
