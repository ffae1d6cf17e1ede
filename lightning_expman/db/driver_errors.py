"""Driver errors: translated at one boundary, and classified for retries.

* :func:`connect_error`: a failed connection as one line naming what was tried, why it failed and
  how to fix it (password scrubbed, the driver error chained by the caller);
* :func:`is_disconnect`: the connection to the server was lost (a retry may succeed);
* :func:`is_conflict`: the server rolled the transaction back to resolve a conflict between
  concurrent writers (running it again is the remedy).

Example:
    >>> try:
    ...     db.execute_sql("SELECT 1")
    ... except Exception as e:
    ...     retry = is_disconnect(db, e) or is_conflict(db, e)
"""

from __future__ import annotations

from collections.abc import Iterator

import peewee as pw

from ..errors import ConnectionError
from ..masking import mask_url
from .urls import DatabaseURL

__all__ = ["connect_error", "describe", "is_conflict", "is_disconnect", "scrub"]

# MySQL client/server error codes that mean the connection is gone (the server rolled back any
# open transaction): 2006 gone away, 2013 lost during query, 2055 lost at handshake/reading,
# 1927 (MariaDB) connection killed, 4031 (MySQL 8) disconnected for inactivity.
_MYSQL_DISCONNECT_CODES = frozenset({2006, 2013, 2055, 1927, 4031})


def scrub(message: str, url: DatabaseURL) -> str:
    """Remove the password from a driver message (drivers do not echo it, but be certain)."""
    message = mask_url(message)
    if url.password:
        message = message.replace(url.password, "***")
    return " ".join(message.split())  # one line


def describe(e: BaseException) -> str:
    """``"OperationalError: (1045, 'Access denied ...')"``: the driver's error, not Peewee's wrapper."""
    cause = getattr(e, "orig", None) or e  # Peewee keeps the driver exception as .orig
    return f"{type(cause).__name__}: {cause}"


def connect_error(url: DatabaseURL, e: BaseException) -> ConnectionError:
    """A one-line ConnectionError naming what was tried, why it failed and how to fix it."""
    detail = scrub(describe(e), url)
    if url.backend == "sqlite":
        hint = "check that the directory exists and is writable"
        where = f"SQLite file {url.database!r}"
    else:
        server = "MySQL/MariaDB" if url.backend == "mysql" else "PostgreSQL"
        hint = (
            f"check that {server} is running at {url.address}, that database {url.database!r} exists and "
            f"that user {url.user!r} may use it (URL form: {url.backend}://user:pass@host:port/dbname)"
        )
        where = f"{server} at {url.address} ({url.render()})"
    return ConnectionError(f"cannot open {where}: {detail}; {hint}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error Peewee wrapped (.orig) and its causes/contexts."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.append(getattr(e, "orig", None))  # the driver error Peewee wrapped
        todo.extend((e.__cause__, e.__context__))


def is_disconnect(db: pw.Database, exc: BaseException) -> bool:
    """Whether ``exc`` means the connection to the server was lost (so a retry may succeed).

    SQLite never loses its connection. MySQL: client/server error codes 2006, 2013, 2055, 1927,
    4031 or a pymysql ``InterfaceError`` (a use of a closed connection). PostgreSQL: a psycopg2
    ``InterfaceError``, or an ``OperationalError`` after which the connection is closed.
    """
    if isinstance(db, pw.SqliteDatabase):
        return False
    for e in _chain(exc):
        module = type(e).__module__ or ""
        name = type(e).__name__
        if module.startswith("pymysql"):
            if name == "InterfaceError":
                return True
            if name == "OperationalError" and e.args and e.args[0] in _MYSQL_DISCONNECT_CODES:
                return True
        elif module.startswith("psycopg2"):
            if isinstance(e, _psycopg2_errors("InterfaceError")):
                return True
            if isinstance(e, _psycopg2_errors("OperationalError")):
                conn = getattr(db._state, "conn", None)
                if conn is None or getattr(conn, "closed", 0):
                    return True
        elif isinstance(e, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return True
    return False


# Deadlock found; lock wait timeout exceeded. (A savepoint then reports 1305 "does not exist":
# the chain is walked, so the deadlock under it is found.)
_MYSQL_RETRY_CODES = frozenset({1213, 1205})
_PG_RETRY_CODES = frozenset({"40P01", "40001"})  # deadlock detected; serialization failure


def is_conflict(db: pw.Database, exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction the server rolled back to resolve a conflict between
    concurrent writers (a deadlock, a lock wait timeout, a serialization failure): running the
    whole transaction again is the documented remedy. SQLite reports conflicts as ``locked``
    after its busy timeout instead, which is not retried here."""
    if isinstance(db, pw.SqliteDatabase):
        return False
    for e in _chain(exc):
        module = type(e).__module__ or ""
        if module.startswith("pymysql") and e.args and e.args[0] in _MYSQL_RETRY_CODES:
            return True
        if module.startswith("psycopg2") and getattr(e, "pgcode", None) in _PG_RETRY_CODES:
            return True
    return False


def _psycopg2_errors(name: str) -> type[BaseException]:
    import psycopg2

    return getattr(psycopg2, name)
