"""The database server's clock, per backend: leases and heartbeats are measured on it, never on a
host's clock (hosts drift; the database is the one clock every process shares).

Times are naive UTC, like every time column (see ``columns.py``).

Example:
    >>> from lightning_expman.db.clock import db_clock
    >>> TrialRun.update(heartbeat=db_clock("postgresql"))       # SET heartbeat = now() AT TIME ZONE 'UTC'
"""

from __future__ import annotations

from typing import Any

import peewee as pw

__all__ = ["db_clock", "now_sql", "older_than"]


def now_sql(backend: str) -> str:
    """SQL for the server's current UTC time (microseconds where the backend keeps them)."""
    if backend == "sqlite":
        return "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    if backend == "mysql":
        return "UTC_TIMESTAMP(6)"
    return "(now() AT TIME ZONE 'UTC')"


def db_clock(backend: str) -> pw.Node:
    """:func:`now_sql` as a Peewee node, for ``update(...)`` values and comparisons."""
    return pw.SQL(now_sql(backend))


def older_than(time: Any, seconds: Any, backend: str) -> pw.Expression:
    """``time < server now - seconds``; ``seconds`` may be a column or expression (per row)."""
    if backend == "sqlite":
        since = pw.fn.strftime(
            "%Y-%m-%d %H:%M:%f", "now", pw.NodeList((pw.SQL("'-' ||"), seconds, pw.SQL("|| ' seconds'")))
        )
    elif backend == "mysql":
        since = pw.NodeList(
            (pw.SQL("UTC_TIMESTAMP(6) - INTERVAL"), pw.fn.ROUND(seconds * 1_000_000), pw.SQL("MICROSECOND"))
        )
    else:
        since = pw.NodeList(
            (pw.SQL("(now() AT TIME ZONE 'UTC') -"), seconds, pw.SQL("* interval '1 second'"))
        )
    return time < since
