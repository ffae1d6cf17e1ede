"""Shared fixtures: real databases (SQLite files, the MariaDB and PostgreSQL servers).

Server-backed tests run when a server URL is configured:

* ``EXPMAN_TEST_MYSQL_URL``    e.g. ``mysql://root@127.0.0.1:3306/expman_test``
* ``EXPMAN_TEST_POSTGRES_URL`` e.g. ``postgresql://postgres@127.0.0.1:5432/expman_test``

With ``CI=true`` those default to the local servers and an unreachable server FAILS the test;
elsewhere, without a URL, the tests skip with a reason saying how to enable them.
Each test gets its own freshly created database on the server, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_SERVERS = {
    "mysql": ("EXPMAN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/expman_test"),
    "postgres": ("EXPMAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/expman_test"),
}


def server_url(kind: str) -> str | None:
    """The configured server URL for ``kind`` ("mysql" / "postgres"), or None when disabled."""
    var, default = _SERVERS[kind]
    return os.environ.get(var) or (default if IN_CI else None)


def _admin_connect(kind: str, url: str):
    parts = urlsplit(url)
    if kind == "mysql":
        import pymysql

        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
            connect_timeout=5,
        )
    import psycopg2

    conn = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def _server_admin(request) -> Iterator[dict]:
    """Lazily opened admin connections per server kind, shared by the session."""
    conns: dict = {}
    yield conns
    for conn in conns.values():
        conn.close()


def _fresh_database(kind: str, admin: dict) -> Iterator[str]:
    var, _ = _SERVERS[kind]
    url = server_url(kind)
    if url is None:
        pytest.skip(f"{kind} tests disabled: set {var}={_SERVERS[kind][1]} (CI=true enables them by default)")
    try:
        if kind not in admin:
            admin[kind] = _admin_connect(kind, url)
        conn = admin[kind]
    except Exception as e:  # unreachable server
        message = f"{kind} server at {urlsplit(url).hostname}:{urlsplit(url).port} unreachable: {e}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"expman_t_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    with conn.cursor() as cur:
        if kind == "postgres":
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'expman.db'}"


@pytest.fixture
def mysql_url(_server_admin) -> Iterator[str]:
    """A fresh, empty database on the MariaDB/MySQL server."""
    yield from _fresh_database("mysql", _server_admin)


@pytest.fixture
def postgres_url(_server_admin) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server."""
    yield from _fresh_database("postgres", _server_admin)


@pytest.fixture(params=["sqlite", "mysql", "postgres"])
def db_url(request, tmp_path, _server_admin) -> Iterator[str]:
    """Each backend in turn: a SQLite file, then fresh MariaDB and PostgreSQL databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'expman.db'}"
    else:
        yield from _fresh_database(request.param, _server_admin)
