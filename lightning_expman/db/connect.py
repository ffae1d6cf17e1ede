"""Database URLs and per-backend connection settings, in one place.

Every backend-specific decision lives here: how a URL maps onto a Peewee database, the SQLite
pragmas that make several writer processes safe (WAL, busy timeout, ``BEGIN IMMEDIATE``), the
driver options for MySQL/MariaDB (pymysql, utf8mb4) and PostgreSQL (psycopg2), how driver
connection errors are translated, and which driver errors mean "the connection was lost".

Accepted URLs::

    sqlite:///relative/path.db        sqlite:////absolute/path.db        sqlite:///:memory:
    mysql://user:pass@host:3306/db    (aliases: mariadb://, mysql+pymysql://)
    postgresql://user@host:5432/db    (aliases: postgres://, postgresql+psycopg2://)

Passwords may be URL-encoded (``p%40ss`` for ``p@ss``). They never appear in a repr, a log line
or an error message: :func:`mask_url` replaces them with ``***``.

Example:
    >>> url = parse_url("mysql://ml_user:s3cret@db.example.org/experiments")
    >>> url.backend, url.host, url.port, url.database
    ('mysql', 'db.example.org', 3306, 'experiments')
    >>> url
    DatabaseURL('mysql://ml_user:***@db.example.org:3306/experiments')
    >>> mask_url("postgresql://bob:hunter2@localhost/runs")
    'postgresql://bob:***@localhost/runs'
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import peewee as pw

from ..errors import ConnectionError, DatabaseError
from ..masking import mask_url

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

_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg2": "postgresql",
}
_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
_VALID_FORMS = (
    "sqlite:///path.db, sqlite:////abs/path.db, mysql://user:pass@host:3306/db, postgresql://user@host/db"
)

# MySQL client/server error codes that mean the connection is gone (the server rolled back any
# open transaction): 2006 gone away, 2013 lost during query, 2055 lost at handshake/reading,
# 1927 (MariaDB) connection killed, 4031 (MySQL 8) disconnected for inactivity.
_MYSQL_DISCONNECT_CODES = frozenset({2006, 2013, 2055, 1927, 4031})


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. ``repr``/``str`` mask the password.

    Attributes:
        backend: ``"sqlite"``, ``"mysql"`` or ``"postgresql"``.
        database: SQLite file path (or ``":memory:"``), else the server-side database name.
        host: server host (None for SQLite).
        port: server port (None for SQLite; the backend default when the URL has none).
        user: user name, if any.
        password: password, if any (decoded; never shown).
        params: extra query-string parameters, passed to the driver.
    """

    backend: str
    database: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    params: dict[str, str] = field(default_factory=dict)

    def render(self, *, hide_password: bool = True) -> str:
        """Rebuild the URL; the password is ``***`` unless ``hide_password=False``."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.database}"
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + ("***" if hide_password else quote(self.password, safe=""))
            auth += "@"
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.backend}://{auth}{self.host}:{self.port}/{self.database}" + (
            f"?{query}" if query else ""
        )

    @property
    def address(self) -> str:
        """``host:port`` of a server, or the SQLite file path."""
        return self.database if self.backend == "sqlite" else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.render()!r})"


def parse_url(url: str | DatabaseURL) -> DatabaseURL:
    """Parse a database URL (see the module docstring for the accepted forms).

    Args:
        url: the URL, or an already parsed :class:`DatabaseURL` (returned unchanged).

    Returns:
        The parsed URL.

    Raises:
        ConnectionError: the scheme is unknown or a server URL lacks a database name; the message
            names the (masked) URL and the valid forms.

    Example:
        >>> parse_url("sqlite:///runs/expman.db").database
        'runs/expman.db'
        >>> parse_url("sqlite:////tmp/x.db").database
        '/tmp/x.db'
    """
    if isinstance(url, DatabaseURL):
        return url
    text = str(url).strip()
    scheme, sep, _ = text.partition("://")
    backend = _SCHEMES.get(scheme.lower()) if sep else None
    if backend is None:
        raise ConnectionError(
            f"unsupported database URL {mask_url(text)!r}: expected one of {_VALID_FORMS} "
            f"(schemes: {', '.join(sorted(_SCHEMES))})"
        )
    parts = urlsplit(text)
    params = dict(parse_qsl(parts.query))
    if backend == "sqlite":
        # sqlite:///rel.db -> path "/rel.db" -> "rel.db"; sqlite:////abs.db -> "//abs.db" -> "/abs.db"
        path = text.split("://", 1)[1].split("?", 1)[0]
        if path.startswith("/"):
            path = path[1:]
        if parts.netloc:
            raise ConnectionError(
                f"invalid SQLite URL {mask_url(text)!r}: use three slashes for a relative path "
                f"(sqlite:///runs.db) or four for an absolute one (sqlite:////tmp/runs.db)"
            )
        return DatabaseURL("sqlite", unquote(path) or ":memory:", params=params)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConnectionError(
            f"database URL {mask_url(text)!r} names no database: expected {scheme}://user:pass@host:port/dbname"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[backend]
    except ValueError as e:
        raise ConnectionError(f"database URL {mask_url(text)!r} has an invalid port: {e}") from None
    return DatabaseURL(
        backend,
        database,
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        params=params,
    )


# --------------------------------------------------------------------------- opening


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


def _connect_failed(url: DatabaseURL, e: BaseException) -> ConnectionError:
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
        raise _connect_failed(parsed, e) from e
    except Exception as e:  # any other driver error (e.g. psycopg2 ProgrammingError on a bad option)
        raise _connect_failed(parsed, e) from e
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


def _chain(exc: BaseException):
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
