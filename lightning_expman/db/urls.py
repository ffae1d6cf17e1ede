"""Database URLs: parsing and rendering (the password never shown).

Accepted URLs::

    sqlite:///relative/path.db        sqlite:////absolute/path.db        sqlite:///:memory:
    mysql://user:pass@host:3306/db    (aliases: mariadb://, mysql+pymysql://)
    postgresql://user@host:5432/db    (aliases: postgres://, postgresql+psycopg2://)

Passwords may be URL-encoded (``p%40ss`` for ``p@ss``). They never appear in a repr, a log line
or an error message: :func:`~lightning_expman.masking.mask_url` replaces them with ``***``.
What a URL opens, with which settings, is :mod:`lightning_expman.db.connect`.

Example:
    >>> url = parse_url("mysql://ml_user:s3cret@db.example.org/experiments")
    >>> url.backend, url.host, url.port, url.database
    ('mysql', 'db.example.org', 3306, 'experiments')
    >>> url
    DatabaseURL('mysql://ml_user:***@db.example.org:3306/experiments')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ..errors import ConnectionError
from ..masking import mask_url

__all__ = ["DatabaseURL", "parse_url"]

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
