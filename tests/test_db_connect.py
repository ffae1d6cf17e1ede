"""URL parsing, password masking and per-backend connection settings (``lightning_expman.db.connect``)."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

import pytest

from lightning_expman.db import ConnectionError, DatabaseError, mask_url, open_database, parse_url
from lightning_expman.db.connect import DatabaseURL, is_disconnect

# --------------------------------------------------------------------------- parse_url


@pytest.mark.parametrize(
    ("url", "backend", "database"),
    [
        ("sqlite:///rel/runs.db", "sqlite", "rel/runs.db"),
        ("sqlite:////abs/runs.db", "sqlite", "/abs/runs.db"),
        ("sqlite:///:memory:", "sqlite", ":memory:"),
        ("sqlite://", "sqlite", ":memory:"),
    ],
)
def test_parse_sqlite_urls(url, backend, database):
    parsed = parse_url(url)
    assert (parsed.backend, parsed.database, parsed.host, parsed.password) == (backend, database, None, None)


@pytest.mark.parametrize(
    ("url", "backend", "port"),
    [
        ("mysql://ml_user:pw@db.example.org:3307/exp", "mysql", 3307),
        ("mariadb://ml_user:pw@db.example.org/exp", "mysql", 3306),
        ("mysql+pymysql://ml_user:pw@db.example.org/exp", "mysql", 3306),
        ("postgresql://ml_user:pw@db.example.org/exp", "postgresql", 5432),
        ("postgres://ml_user:pw@db.example.org:6543/exp", "postgresql", 6543),
    ],
)
def test_parse_server_urls_and_aliases(url, backend, port):
    parsed = parse_url(url)
    assert parsed.backend == backend
    assert (parsed.host, parsed.port, parsed.user, parsed.password, parsed.database) == (
        "db.example.org",
        port,
        "ml_user",
        "pw",
        "exp",
    )


def test_parse_url_decodes_percent_encoded_password_and_params():
    parsed = parse_url("mysql://bob:p%40ss%3Aw%2Ford@host/db?connect_timeout=3")
    assert parsed.password == "p@ss:w/ord"
    assert parsed.params == {"connect_timeout": "3"}
    assert parse_url(parsed) is parsed  # already parsed: returned unchanged


@pytest.mark.parametrize("url", ["oracle://scott:tiger@host/db", "experiments.db", "http://x/y"])
def test_parse_url_rejects_unknown_schemes_naming_url_and_valid_forms(url):
    with pytest.raises(ConnectionError) as info:
        parse_url(url)
    message = str(info.value)
    assert isinstance(info.value, DatabaseError)
    assert "tiger" not in message
    assert mask_url(url) in message
    assert "sqlite:///path.db" in message and "mysql://user:pass@host:3306/db" in message
    assert "\n" not in message


def test_parse_url_rejects_server_url_without_database():
    with pytest.raises(ConnectionError, match="names no database"):
        parse_url("mysql://root:pw@localhost:3306/")


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mysql://root:hunter2@h:3306/db", "mysql://root:***@h:3306/db"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("mysql://u:p@ss@h/db", "mysql://u:***@h/db"),  # unencoded "@": urlsplit splits at the last one
        ("https://host:8443/path@x", "https://host:8443/path@x"),  # a port is not a password
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///runs.db", "sqlite:///runs.db"),
        ("error at mysql://a:b@c/d today", "error at mysql://a:***@c/d today"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_database_url_repr_str_and_render_mask_the_password():
    parsed = parse_url("mysql://bob:s3cr3t@host:3306/db")
    for text in (repr(parsed), str(parsed), parsed.render(), f"{parsed}", f"{parsed!r}"):
        assert "s3cr3t" not in text and "***" in text
    assert parse_url(parsed.render(hide_password=False)).password == "s3cr3t"
    assert DatabaseURL("sqlite", "/a/b.db").render() == "sqlite:////a/b.db"


# --------------------------------------------------------------------------- SQLite settings


def test_open_sqlite_sets_wal_busy_timeout_sync_and_foreign_keys(tmp_path):
    path = tmp_path / "nested" / "dir" / "x.db"  # parent directories are created
    db = open_database(f"sqlite:///{path}")
    pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert path.exists()
    assert pragma("journal_mode") == "wal"
    assert pragma("busy_timeout") >= 30_000
    assert pragma("synchronous") == 1  # NORMAL
    assert pragma("foreign_keys") == 1
    db.close()


def test_sqlite_write_transactions_take_the_write_lock_at_begin(tmp_path):
    """BEGIN IMMEDIATE: the lock is held from the start, before any write (no upgrade deadlocks)."""
    path = tmp_path / "x.db"
    db = open_database(f"sqlite:///{path}")
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with db.atomic():
        db.execute_sql("SELECT COUNT(*) FROM t").fetchone()  # a read only
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # released at commit
    other.execute("ROLLBACK")
    other.close()
    db.close()


def test_open_sqlite_unwritable_path_raises_connection_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConnectionError) as info:
        open_database(f"sqlite:///{blocker / 'sub' / 'x.db'}")
    assert "file" in str(info.value) and info.value.__cause__ is not None


def test_sqlite_never_reports_a_disconnect(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    assert not is_disconnect(db, sqlite3.OperationalError("disk I/O error"))
    db.close()


# --------------------------------------------------------------------------- servers


def test_unreachable_server_error_names_host_port_url_form_and_masks_password():
    # Port 1 on localhost: nothing listens there, the connection is refused at once.
    url = "mysql://alice:TopSecret99@127.0.0.1:1/experiments"
    with pytest.raises(ConnectionError) as info:
        open_database(url)
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "mysql://user:pass@host:port/dbname" in message
    assert "TopSecret99" not in message and "***" in message
    assert "\n" not in message
    assert info.value.__cause__ is not None  # the driver error is chained


def test_unreachable_postgres_error(tmp_path):
    with pytest.raises(ConnectionError) as info:
        open_database("postgresql://bob:Pw123456@127.0.0.1:1/experiments")
    assert "127.0.0.1:1" in str(info.value) and "Pw123456" not in str(info.value)


def test_missing_server_database_is_a_connection_error(mysql_url, postgres_url):
    for url in (mysql_url, postgres_url):
        parts = urlsplit(url)
        missing = url.replace(parts.path, "/expman_no_such_db")
        with pytest.raises(ConnectionError, match="expman_no_such_db"):
            open_database(missing)


def test_open_server_databases(mysql_url, postgres_url):
    db = open_database(mysql_url)
    assert db.execute_sql("SELECT @@character_set_client").fetchone()[0] == "utf8mb4"
    db.close()
    db = open_database(postgres_url)
    assert db.execute_sql("SELECT 1").fetchone()[0] == 1
    db.close()
