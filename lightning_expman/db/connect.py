"""Opening databases: per-backend connection settings, in one place.

Every backend-specific decision about a connection lives here: how a URL maps onto a Peewee
database, the SQLite pragmas that make several writer processes safe (WAL, busy timeout, ``BEGIN
IMMEDIATE``), the driver options for MySQL/MariaDB (pymysql, utf8mb4) and PostgreSQL (psycopg2),
and read-only sessions. Parsing URLs is :mod:`lightning_expman.db.urls`; translating and
classifying driver errors (lost connection, write conflict) :mod:`lightning_expman.db.driver_errors`.
Their public names are importable from here too.

Example:
    >>> db = open_database("sqlite:///runs/expman.db")
    >>> backend_of(db)
    'sqlite'
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import peewee as pw

from ..errors import ConnectionError, DatabaseError
from ..masking import mask_url
from .driver_errors import connect_error, describe, is_conflict, is_disconnect, scrub
from .urls import DatabaseURL, parse_url

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "DatabaseURL",
    "backend_of",
    "describe",
    "is_conflict",
    "is_disconnect",
    "mask_url",
    "open_database",
    "parse_url",
    "scrub",
]

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write lock before failing."""


class _SqliteDatabase(pw.SqliteDatabase):
    """SqliteDatabase whose switch to WAL survives several processes opening a fresh file at once.

    Switching the journal mode needs an exclusive lock, and SQLite may answer SQLITE_BUSY for it
    without calling the busy handler; the mode is persistent in the file, so only the first
    openings of a new database race here. Retry for up to the busy timeout.
    """

    def _set_pragmas(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
                    conn.execute("PRAGMA journal_mode = wal")
                break
            except sqlite3.OperationalError as e:
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        super()._set_pragmas(conn)


def _sqlite(url: DatabaseURL) -> pw.SqliteDatabase:
    pragmas = {
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,  # wait for another writer instead of failing at once
        # journal_mode = wal (readers never block the writer) is set by _SqliteDatabase
        "synchronous": "normal",  # durable across process crashes in WAL mode; fsync at checkpoints
        "foreign_keys": 1,
        "cache_size": -16000,  # 16 MB page cache
    }
    memory = url.database == ":memory:" or url.params.get("mode") == "memory"
    if not memory:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return _SqliteDatabase(
        ":memory:" if memory else str(Path(url.database).expanduser()),
        pragmas=pragmas,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        # BEGIN IMMEDIATE takes the write lock up front, so two writers never deadlock on a
        # read->write lock upgrade (which SQLite answers with SQLITE_BUSY without waiting).
        lock_type="IMMEDIATE",
        # An in-memory database exists once per connection: share a single connection between
        # threads (the manager serialises access to it) instead of one per thread.
        thread_safe=not memory,
        check_same_thread=not memory,
    )


def _sqlite_read_only(url: DatabaseURL) -> pw.SqliteDatabase:
    """A SQLite file opened for reading only: no journal-mode switch, no schema, ``query_only``;
    the file (empty, foreign or ours) stays byte for byte the same and no file is created.

    While a writer is connected (its ``-wal`` file exists) the file is opened ``mode=ro`` and
    shares the writer's WAL index, so the reader sees every committed row. Without a ``-wal``
    file nobody is writing: the file is opened ``immutable=1``, which needs no ``-shm``/``-wal``
    files (``mode=ro`` on a WAL database would create both and leave them behind).
    """
    path = Path(url.database).expanduser().resolve()
    if not path.is_file():
        raise ConnectionError(f"no SQLite database file at {str(path)!r} (from {url.render()})")
    live = Path(f"{path}-wal").exists()
    return pw.SqliteDatabase(
        f"{path.as_uri()}?{'mode=ro' if live else 'immutable=1'}",
        uri=True,
        pragmas={"busy_timeout": SQLITE_BUSY_TIMEOUT_MS, "query_only": 1},
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )


def _mysql(url: DatabaseURL) -> pw.MySQLDatabase:
    extra: dict[str, Any] = {k: v for k, v in url.params.items() if k not in ("charset",)}
    return pw.MySQLDatabase(
        url.database,
        host=url.host,
        port=url.port,
        user=url.user or "root",
        password=url.password or "",
        charset="utf8mb4",
        connect_timeout=int(extra.pop("connect_timeout", 10)),
        # Microseconds, as on SQLite and PostgreSQL: leases and claims compare times closely.
        field_types={"DATETIME": "DATETIME(6)"},
        **extra,
    )


def _postgresql(url: DatabaseURL) -> pw.PostgresqlDatabase:
    extra: dict[str, Any] = dict(url.params)
    return pw.PostgresqlDatabase(
        url.database,
        host=url.host,
        port=url.port,
        user=url.user or "postgres",
        password=url.password,
        connect_timeout=int(extra.pop("connect_timeout", 10)),
        **extra,
    )


_FACTORIES = {"sqlite": _sqlite, "mysql": _mysql, "postgresql": _postgresql}


def _make_read_only(db: pw.Database, backend: str) -> None:
    """Make the session refuse writes (a guarantee on top of read commands issuing none)."""
    if backend == "mysql":
        db.execute_sql("SET SESSION TRANSACTION READ ONLY")
    elif backend == "postgresql":
        db.execute_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        db.commit()


def open_database(url: str | DatabaseURL, *, read_only: bool = False) -> pw.Database:
    """Open (and connect to) the database at ``url`` with this project's per-backend settings.

    SQLite: WAL journal, 30 s busy timeout, ``synchronous=NORMAL``, foreign keys on, ``BEGIN
    IMMEDIATE`` write transactions; the parent directory is created. MySQL/MariaDB: pymysql,
    utf8mb4. PostgreSQL: psycopg2. Peewee keeps one connection per thread and opens it on first
    use in each thread; this function connects the calling thread right away so that a bad URL
    fails here, with a clear message.

    With ``read_only=True`` (the read commands: ``expman ls/show/export/report``) nothing is
    created or altered: a SQLite file must exist and is opened ``mode=ro`` without the WAL switch
    (an empty or foreign file stays byte for byte the same); MySQL/PostgreSQL sessions are set
    read-only.

    Args:
        url: a database URL or :class:`DatabaseURL`.
        read_only: open for reading only (see above).

    Returns:
        A connected ``peewee.Database`` (not yet bound to the models; see ``DatabaseManager``).

    Raises:
        ConnectionError: unknown scheme, unreachable server, bad credentials, missing database,
            unwritable SQLite path. The message names host:port, the URL form and never the
            password; the driver error is chained.

    Example:
        >>> db = open_database("sqlite:///:memory:")
        >>> db.execute_sql("PRAGMA foreign_keys").fetchone()
        (1,)
        >>> db.close()
        True
    """
    parsed = parse_url(url)
    memory = parsed.database == ":memory:" or parsed.params.get("mode") == "memory"
    try:
        if read_only and parsed.backend == "sqlite" and not memory:
            db = _sqlite_read_only(parsed)
        else:
            db = _FACTORIES[parsed.backend](parsed)
        db.connect()
        if read_only:
            _make_read_only(db, parsed.backend)
    except ConnectionError:  # ours, already one clear line
        raise
    except pw.ImproperlyConfigured as e:
        extra = "postgres" if parsed.backend == "postgresql" else "mysql"
        raise ConnectionError(
            f"the {parsed.backend} driver is not installed for {parsed.render()}: "
            f"pip install 'lightning-expman[{extra}]'"
        ) from e
    except (pw.PeeweeException, OSError) as e:
        raise connect_error(parsed, e) from e
    except Exception as e:  # any other driver error (e.g. psycopg2 ProgrammingError on a bad option)
        raise connect_error(parsed, e) from e
    log.debug("opened %s database %s", parsed.backend, parsed.render())
    return db


def backend_of(db: pw.Database) -> str:
    """``"sqlite"``, ``"mysql"`` or ``"postgresql"`` for a Peewee database."""
    if isinstance(db, pw.SqliteDatabase):
        return "sqlite"
    if isinstance(db, pw.MySQLDatabase):
        return "mysql"
    if isinstance(db, pw.PostgresqlDatabase):
        return "postgresql"
    raise DatabaseError(f"unsupported database {type(db).__name__}: expected SQLite, MySQL or PostgreSQL")
