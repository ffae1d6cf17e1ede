"""Concurrency and durability: many writer processes, dropped server connections, password masking."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pymysql
import pytest

from lightning_expman.db import ConnectionError, DatabaseManager, QueryError, parse_url
from lightning_expman.db import models as m

PROCESSES = 8
VALUES_PER_PROCESS = 10_000
BATCH = 250  # 40 transactions per process, interleaved with the other 7 processes

# Each child waits for the "go" file so all 8 open the (fresh, table-less) database at the same
# moment: that races schema creation and get_or_create as well as the 320 write transactions.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    url, idx, sync = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    values, batch = int(sys.argv[4]), int(sys.argv[5])
    from lightning_expman.db import DatabaseManager
    (sync / f"ready{idx}").touch()
    while not (sync / "go").exists():
        time.sleep(0.005)
    db = DatabaseManager(url)
    exp = db.get_or_create_experiment("concurrency")
    trial = db.get_or_create_trial(exp.id, "shared")
    run = db.create_trial_run(trial.id, repeat_idx=idx)
    for start in range(0, values, batch):
        rows = [(run.id, s, s // 1000, "loss", s * 0.5) for s in range(start, start + batch)]
        assert db.record_step_metrics(rows) == batch
    db.record_epoch_metrics(run.id, 0, {"val_loss": float(idx)})
    db.finish_trial_run(run.id, "completed")
    db.close()
    """
)


def _run_writers(url: str, tmp_path: Path) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    root = str(Path(__file__).resolve().parents[1])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(i), str(sync), str(VALUES_PER_PROCESS), str(BATCH)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while len(list(sync.glob("ready*"))) < PROCESSES and time.monotonic() < deadline:
        time.sleep(0.01)
    (sync / "go").touch()
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(err[-2000:])
    assert not failures, failures[0]


def _check_writers(url: str) -> None:
    db = DatabaseManager(url)
    sql = lambda q: [tuple(r) for r in db.database.execute_sql(q).fetchall()]  # noqa: E731
    assert sql("SELECT COUNT(*) FROM step_metric") == [(PROCESSES * VALUES_PER_PROCESS,)]
    per_run = sql(
        "SELECT trial_run_id, COUNT(*), COUNT(DISTINCT step) FROM step_metric GROUP BY trial_run_id"
    )
    assert sorted(n for _, n, _ in per_run) == [VALUES_PER_PROCESS] * PROCESSES
    assert all(distinct == VALUES_PER_PROCESS for _, _, distinct in per_run)  # nothing written twice
    assert sql("SELECT COUNT(*) FROM experiment") == [(1,)]  # get_or_create raced, one winner
    assert sql("SELECT COUNT(*) FROM trial") == [(1,)]
    assert sql("SELECT COUNT(*), COUNT(DISTINCT repeat_idx) FROM trial_run WHERE status = 'COMPLETED'") == [
        (PROCESSES, PROCESSES)
    ]
    assert sql("SELECT COUNT(*) FROM epoch_metric") == [(PROCESSES,)]
    assert sql("SELECT id, version FROM schema_version") == [(1, m.SCHEMA_VERSION)]
    db.close()


@pytest.mark.slow
def test_eight_processes_write_into_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # does not exist yet: the children create it
    _run_writers(url, tmp_path)
    _check_writers(url)


@pytest.mark.slow
@pytest.mark.mysql
def test_eight_processes_write_into_one_mariadb_database(mysql_url, tmp_path):
    _run_writers(mysql_url, tmp_path)
    _check_writers(mysql_url)


# --------------------------------------------------------------------------- dropped connections


def _admin(url: str) -> pymysql.Connection:
    u = parse_url(url)
    return pymysql.connect(host=u.host, port=u.port, user=u.user, password=u.password or "", autocommit=True)


def _kill(db: DatabaseManager, admin: pymysql.Connection) -> None:
    """KILL the calling thread's server connection from another connection, as a server restart would."""
    conn_id = int(db.database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0])
    with admin.cursor() as cur:
        cur.execute(f"KILL {conn_id}")
        # KILL only flags the thread: wait until it is gone, so the next write meets a dead
        # connection rather than being killed half way through (which would be another test).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (conn_id,))
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"connection {conn_id} still alive 10 s after KILL")


@pytest.mark.mysql
def test_killed_mysql_connection_is_reestablished_without_loss_or_duplicates(mysql_url, caplog):
    admin = _admin(mysql_url)
    db = DatabaseManager(mysql_url)
    run = db.create_trial_run(db.create_trial(db.create_experiment("kill").id, "t").id)
    db.record_step_metrics([(run.id, s, 0, "loss", 1.0) for s in range(100)])
    old_id = db.database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
    with caplog.at_level(logging.WARNING, logger="lightning_expman"):
        _kill(db, admin)
        assert db.record_step_metrics([(run.id, s, 0, "loss", 2.0) for s in range(100, 200)]) == 100
        _kill(db, admin)
        db.record_epoch_metrics(run.id, 0, {"val_loss": 0.5})  # a multi-statement transaction
        _kill(db, admin)
        assert [x.type for x in db.get_epoch_metrics(0, run.id)] == ["val_loss"]  # reads retry too
    assert db.database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0] != old_id
    rows = db.database.execute_sql("SELECT COUNT(*), COUNT(DISTINCT step) FROM step_metric").fetchone()
    assert rows == (200, 200)
    assert db.database.execute_sql("SELECT COUNT(*) FROM metric").fetchone() == (1,)
    assert db.database.execute_sql("SELECT COUNT(*) FROM epoch_metric").fetchone() == (1,)
    assert sum("reconnecting" in r.getMessage() for r in caplog.records) == 3
    db.close()
    admin.close()


@pytest.mark.mysql
def test_connection_killed_inside_an_explicit_transaction(mysql_url):
    """A ``with transaction()`` body cannot be re-run: it fails loudly; the next write reconnects."""
    admin = _admin(mysql_url)
    db = DatabaseManager(mysql_url)
    with pytest.raises(ConnectionError, match="lost the connection"), db.transaction():
        db.create_experiment("first")
        _kill(db, admin)
        db.create_experiment("second")
    assert db.create_experiment("third").title == "third"
    titles = [r[0] for r in db.database.execute_sql("SELECT title FROM experiment").fetchall()]
    assert titles == ["third"]  # the killed transaction was rolled back by the server, whole
    db.close()
    admin.close()


@pytest.mark.mysql
def test_writer_thread_survives_a_killed_connection(mysql_url):
    import threading

    admin = _admin(mysql_url)
    db = DatabaseManager(mysql_url)
    run = db.create_trial_run(db.create_trial(db.create_experiment("thread").id, "t").id)
    results: list = []

    def writer() -> None:
        db.record_step_metrics([(run.id, 0, 0, "x", 1.0)])
        _kill(db, admin)  # this thread's own connection
        results.append(db.record_step_metrics([(run.id, 1, 0, "x", 1.0)]))
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(30)
    assert results == [1]
    db.create_experiment("main thread unaffected")
    assert db.database.execute_sql("SELECT COUNT(*) FROM step_metric").fetchone() == (2,)
    db.close()
    admin.close()


@pytest.mark.postgres
def test_terminated_postgres_backend_is_reestablished(postgres_url, _server_admin):
    db = DatabaseManager(postgres_url)
    run = db.create_trial_run(db.create_trial(db.create_experiment("kill").id, "t").id)
    pid = db.database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with _server_admin["postgres"].cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while True:  # pg_terminate_backend only signals the backend: wait until it has exited
            cur.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.01)
    assert db.record_step_metrics([(run.id, s, 0, "loss", 1.0) for s in range(50)]) == 50
    assert db.database.execute_sql("SELECT COUNT(*) FROM step_metric").fetchone() == (50,)
    db.close()


# --------------------------------------------------------------------------- password masking

PASSWORD = "S3cr3t@Pa55:w0rd!"
USER = "expman_pw_user"


@pytest.fixture
def password_url(mysql_url):
    """``mysql_url`` for a real user with a password (URL-encoded in the URL)."""
    admin = _admin(mysql_url)
    dbname = urlsplit(mysql_url).path.lstrip("/")
    with admin.cursor() as cur:
        for host in ("%", "localhost", "127.0.0.1"):
            h = host.replace("%", "%%")  # pymysql formats the statement: escape the wildcard host
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{h}' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(f"ALTER USER '{USER}'@'{h}' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{dbname}`.* TO '{USER}'@'{host}'")
    parts = urlsplit(mysql_url)
    netloc = f"{USER}:{quote(PASSWORD, safe='')}@{parts.hostname}:{parts.port or 3306}"
    yield urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    with admin.cursor() as cur:
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"DROP USER IF EXISTS '{USER}'@'{host}'")
    admin.close()


def _assert_hidden(text: str) -> None:
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "S3cr3t"):
        assert secret not in text, f"password leaked in: {text[:300]}"


@pytest.mark.mysql
def test_password_never_appears_in_logs_reprs_errors_or_rows(password_url, caplog):
    caplog.set_level(logging.DEBUG)  # peewee logs every query with its parameters at DEBUG
    seen: list[str] = []

    db = DatabaseManager(password_url)
    u = parse_url(password_url)
    kw = DatabaseManager(database_path=u.database, host=u.host, port=u.port, user=USER, password=PASSWORD)
    seen += [repr(db), str(db), db.url, repr(kw), kw.url, repr(u), str(u)]
    assert "***" in db.url and "***" in kw.url

    exp = db.create_experiment("pw", config={"db": {"url": password_url, "password": PASSWORD}})
    run = db.create_trial_run(
        db.create_trial(exp.id, "t").id, config={"db_url": password_url}, context={"api_token": PASSWORD}
    )
    db.log_params(run.id, {"db": {"url": password_url, "password": PASSWORD, "user": USER}})
    db.record_artifact("store", f"{password_url}/bucket")
    db.finish_trial_run(run.id, "failed", error=f"OperationalError: cannot reach {password_url}")

    # errors: a failing query, then a wrong password (with the real password in the URL elsewhere)
    with pytest.raises(QueryError) as failed:
        db.create_trial(999, "t")
    bad_url = password_url.replace(quote(PASSWORD, safe=""), quote(PASSWORD + "x", safe=""))
    with pytest.raises(ConnectionError) as denied:
        DatabaseManager(bad_url)
    with pytest.raises(ConnectionError) as denied_kw:
        DatabaseManager(
            database_path=u.database, host=u.host, port=u.port, user=USER, password=PASSWORD + "x"
        )
    for info in (failed, denied, denied_kw):
        seen += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    assert "access denied" in str(denied.value).lower() and f"{u.host}:{u.port}" in str(denied.value)

    # every stored value, every table
    for (table,) in db.database.execute_sql("SHOW TABLES").fetchall():
        seen += [repr(row) for row in db.database.execute_sql(f"SELECT * FROM `{table}`").fetchall()]
    seen += [caplog.text] + [repr(r.args) for r in caplog.records]
    assert any("***" in s for s in seen)
    for text in seen:
        _assert_hidden(text)
    db.close()
    kw.close()


@pytest.mark.mysql
def test_failed_connect_in_a_new_thread_is_a_connection_error(password_url, mysql_url):
    """Peewee connects each thread on first use: a refused login there is translated too."""
    import threading

    db = DatabaseManager(password_url)
    admin = _admin(mysql_url)
    with admin.cursor() as cur:
        for host in ("%%", "localhost", "127.0.0.1"):
            cur.execute(f"ALTER USER '{USER}'@'{host}' IDENTIFIED BY %s", ("changed-" + PASSWORD,))
    admin.close()
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            db.create_experiment("from a thread")
        except BaseException as e:
            caught.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    [error] = caught
    assert isinstance(error, ConnectionError) and error.__cause__ is not None
    assert "127.0.0.1:3306" in str(error) and "access denied" in str(error).lower()
    _assert_hidden(str(error))
    db.close()
