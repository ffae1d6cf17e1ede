"""Lightning's console output and log lines during runs: quiet by default, copied into each
run's log file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    """Keep the console to one progress line per run unless env.yaml says ``verbose: true``.

    Lightning's console handlers keep only warnings, while its loggers stay at INFO so that
    its info lines reach each run's ``run.log`` (see :func:`_lightning_log_to`), which then
    changes no logger level per run (``Logger.setLevel`` clears the cache of every logger in
    the process). Levels and warning filters are restored on exit.
    """
    if verbose:
        yield
        return
    import warnings

    import lightning  # noqa: F401 -- its import sets the levels and handlers we override here

    loggers = [logging.getLogger(n) for n in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    console = [h for lg in loggers for h in lg.handlers]
    console_levels = [h.level for h in console]
    with warnings.catch_warnings():
        for pattern in (
            r".*does not have many workers.*",
            r".*Checkpoint directory .* exists and is not empty.*",
            r".*smaller than the logging interval.*",
            r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
        ):
            warnings.filterwarnings("ignore", message=pattern)
        for h in console:
            h.setLevel(max(h.level, logging.WARNING))
        for lg in loggers:
            lg.setLevel(logging.INFO)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            for h, level in zip(console, console_levels):
                h.setLevel(level)


@contextlib.contextmanager
def _lightning_log_to(env: Any) -> Iterator[None]:
    """Copy Lightning's log lines (INFO and up) into the run's log file while it runs."""
    handlers = list(getattr(env.logger, "handlers", []))
    loggers = [logging.getLogger(n) for n in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        for h in handlers:
            lg.addHandler(h)
    # The handlers filter by their own level; the logger must let INFO through to reach them,
    # while the console handler Lightning installed keeps only warnings in quiet mode.
    console = [h for lg in loggers for h in lg.handlers if h not in handlers]
    console_levels = [h.level for h in console]
    quiet = any(lv >= logging.WARNING for lv in levels)
    if quiet:
        for h in console:
            h.setLevel(max(h.level, logging.WARNING))
        for lg in loggers:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            if quiet:  # only what was changed: Logger.setLevel clears every logger's cache
                lg.setLevel(lv)
            for h in handlers:
                lg.removeHandler(h)
        if quiet:
            for h, lv in zip(console, console_levels):
                h.setLevel(lv)
