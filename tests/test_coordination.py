"""Claims, leases and reaping (lightning_expman.coordination) on SQLite, MariaDB and PostgreSQL.

Real databases, real processes: exact counts, and leases measured on the database's clock.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lightning_expman.coordination import Claimer, Lease, db_now, proc_key, process_alive, reap
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.db.migrations import get_schema_version
from lightning_expman.query import Query

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(db_url):
    manager = DatabaseManager(db_url)
    yield manager
    manager.close()


def _grid(db: DatabaseManager, repeats: int = 3) -> tuple[int, list[tuple[int, int]]]:
    trial = db.create_trial(db.create_experiment("grid").id, "t").id
    return trial, [(trial, r) for r in range(1, repeats + 1)]


def _status(db: DatabaseManager, run_id: int) -> str:
    return m.TrialRun.select(m.TrialRun.status).where(m.TrialRun.id == run_id).scalar(db.database)


def test_a_unit_is_claimed_once_and_a_done_unit_never_again(db):
    _, units = _grid(db)
    first, second = Claimer(db, stale_after=60), Claimer(db, stale_after=60)
    first.register(units)
    second.register(units)  # idempotent: one claim row per unit
    assert m.Claim.select().count(db.database) == 3
    claims = [first.claim(t, r, seed=r) for t, r in units]
    assert all(c is not None for c in claims)
    assert [second.claim(t, r) for t, r in units] == [None, None, None]  # taken, leases alive
    assert db.finish_trial_run(claims[0].run_id, "completed", owner=claims[0].owner) is True
    assert Claimer(db).claim(*units[0]) is None  # done for good
    rows = list(m.TrialRun.select().order_by(m.TrialRun.id).execute(db.database))
    assert [(r.repeat_idx, r.seed, r.owner is not None, r.lease_s) for r in rows] == [
        (1, 1, True, 60.0),
        (2, 2, True, 60.0),
        (3, 3, True, 60.0),
    ]


def test_an_expired_lease_is_lost_and_claimed_again_by_anyone(db):
    trial, units = _grid(db, 1)
    claimer = Claimer(db, stale_after=0.5)
    claimer.register(units)
    old = claimer.claim(*units[0])
    assert Claimer(db).claim(*units[0]) is None
    time.sleep(1.0)  # no heartbeat: the lease runs out on the database's clock
    new = Claimer(db).claim(*units[0])
    assert new is not None and new.run_id != old.run_id
    row = m.TrialRun.get_by_id(old.run_id)
    assert row.status == "LOST" and row.error.startswith("lost: no heartbeat within its lease")
    assert row.end_time is not None
    # The late holder cannot bring it back: the unit went on without it.
    assert db.finish_trial_run(old.run_id, "completed", owner=old.owner) is False
    assert _status(db, old.run_id) == "LOST"
    claim = m.Claim.get((m.Claim.trial == trial) & (m.Claim.repeat_idx == 1))
    assert claim.trial_run_id == new.run_id


def test_a_failure_is_not_retried_by_the_session_that_saw_it_but_by_the_next(db):
    _, units = _grid(db, 1)
    watching = Claimer(db)  # a second launcher, started before the failure
    running = Claimer(db)
    running.register(units)
    claim = running.claim(*units[0])
    db.finish_trial_run(claim.run_id, "failed", error="RuntimeError: boom", owner=claim.owner)
    assert watching.claim(*units[0]) is None
    time.sleep(0.01)
    assert Claimer(db).claim(*units[0]) is not None  # a later `expman run` retries it


def test_a_lease_keeps_its_run_alive_and_learns_when_it_was_declared_lost(db):
    _, units = _grid(db, 1)
    claimer = Claimer(db, stale_after=0.6)
    claimer.register(units)
    claim = claimer.claim(*units[0])
    with Lease(db, claim.run_id, claim.owner, stale_after=0.6) as lease:
        time.sleep(1.5)
        assert reap(db) == [] and _status(db, claim.run_id) == "RUNNING"
        assert Claimer(db).claim(*units[0]) is None
        # Another process declares it lost (say, after a network partition): the lease notices.
        m.TrialRun.update(status="LOST").where(m.TrialRun.id == claim.run_id).execute(db.database)
        deadline = time.monotonic() + 10
        while not lease.lost:
            assert time.monotonic() < deadline, "the lease never noticed"
            time.sleep(0.05)
    assert db.renew_lease(claim.run_id, claim.owner) == "LOST"


def test_read_commands_show_an_expired_run_as_lost_without_writing(db):
    _, units = _grid(db, 2)
    claimer = Claimer(db, stale_after=0.3)
    claimer.register(units)
    expired, alive = (claimer.claim(*u) for u in units)
    with Lease(db, alive.run_id, alive.owner, stale_after=0.3):
        time.sleep(0.8)
        with Query(db) as q:
            shown = {r["run_id"]: r["status"] for r in q.runs("grid").rows}
            listed = q.experiments().rows[0]["statuses"]
            lost_only = [r["run_id"] for r in q.runs("grid", statuses=["lost"]).rows]
    assert shown == {expired.run_id: "LOST", alive.run_id: "RUNNING"}
    assert listed == {"LOST": 1, "RUNNING": 1}
    assert lost_only == [expired.run_id]
    assert _status(db, expired.run_id) == "RUNNING"  # nothing was written


def test_forced_rerun_releases_every_unit_not_running(db):
    _, units = _grid(db, 2)
    claimer = Claimer(db)
    claimer.register(units)
    done, _running = (claimer.claim(*u) for u in units)
    db.finish_trial_run(done.run_id, "completed", owner=done.owner)
    assert claimer.release([units[0][0]]) == 1
    again = Claimer(db)
    assert again.claim(*units[0]) is not None and again.claim(*units[1]) is None


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from lightning_expman.coordination import Claimer
    from lightning_expman.db import DatabaseManager
    db = DatabaseManager(sys.argv[1])
    trial = db.create_trial(db.create_experiment("killed").id, "t").id
    claimer = Claimer(db, stale_after=3600)
    claimer.register([(trial, 1)])
    print(claimer.claim(trial, 1).run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_run_whose_local_process_died_is_lost_at_once(db, db_url):
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, db_url], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    run_id = int(proc.stdout.strip())
    row = m.TrialRun.get_by_id(run_id)
    assert row.status == "RUNNING" and row.lease_s == 3600 and process_alive(row.proc_key) is False
    assert reap(db) == [run_id]  # no need to wait an hour: its process is gone
    row = m.TrialRun.get_by_id(run_id)
    assert row.status == "LOST" and "its process is gone" in row.error and f"pid {row.pid}" in row.error
    assert reap(db) == []


def test_process_identity():
    assert process_alive(proc_key()) is True
    assert process_alive(None) is None
    assert process_alive("another-kernel/4026531836/1/1") is None  # another host: cannot tell
    alive_elsewhere = proc_key().rsplit("/", 2)[0] + "/1/999999999"  # pid 1, but another start time
    assert process_alive(alive_elsewhere) is False


def test_the_clock_is_the_database_s(db):
    before = db_now(db)
    time.sleep(0.05)
    assert db_now(db) > before


def test_a_release_1_database_is_upgraded_and_its_units_keep_their_history(tmp_path):
    path = tmp_path / "v1.db"
    shutil.copy(REPO / "tests" / "data" / "release_v1.db", path)
    db = DatabaseManager(f"sqlite:///{path}")
    try:
        assert get_schema_version(db.database) == m.SCHEMA_VERSION
        columns = {c.name for c in db.database.get_columns("trial_run")}
        assert {"owner", "lease_s", "pid", "proc_key", "attempts"} <= columns
        assert {"claim", "write_mark"} <= set(db.database.get_tables())
        rows = {r.repeat_idx: r for r in m.TrialRun.select().execute(db.database)}
        assert (rows[1].status, rows[1].lease_s) == ("COMPLETED", None)
        assert (rows[2].status, rows[2].lease_s) == ("RUNNING", 120.0)  # release 1's resume rule
        assert reap(db) == [rows[2].id]  # its last heartbeat is long past 120 s
        # Claims start from the recorded runs: the completed unit is done, the lost one is free.
        trial = rows[1].trial_id
        claimer = Claimer(db)
        claimer.register([(trial, 1), (trial, 2)], {(trial, 1): rows[1].id, (trial, 2): rows[2].id})
        assert claimer.claim(trial, 1) is None and claimer.claim(trial, 2) is not None
        # Everything release 1 wrote reads back unchanged (a table rebuild would cascade-delete it).
        assert [mt.total_val for mt in db.get_epoch_metrics(2, rows[1].id)] == [1 / 3]
        assert m.StepMetric.select().count(db.database) == 5
    finally:
        db.close()


@pytest.mark.parametrize("server", ["mysql", "postgres"])
def test_a_deadlock_between_writers_is_retried_not_raised(server, request):
    """Two transactions lock two rows in opposite orders: the server kills one to break the
    deadlock, and run_in_transaction runs it again, so both writes land."""
    import threading

    url = request.getfixturevalue(f"{server}_url")
    setup = DatabaseManager(url)
    a, b = (setup.create_experiment(name).id for name in ("a", "b"))
    setup.close()
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}
    attempts = {"first": 0, "second": 0}

    def writer(name: str, first: int, second: int) -> None:
        db = DatabaseManager(url)
        E = m.Experiment

        def fn() -> str:
            attempts[name] += 1
            E.update(desc=name).where(E.id == first).execute(db.database)
            if attempts[name] == 1:
                barrier.wait()  # both hold their first row: the second update deadlocks
            E.update(desc=name).where(E.id == second).execute(db.database)
            return name

        try:
            results[name] = db.run_in_transaction(fn, what=f"writer {name}")
        except Exception as e:  # pragma: no cover - what the test would report
            results[name] = e
        finally:
            db.close()

    threads = [
        threading.Thread(target=writer, args=("first", a, b)),
        threading.Thread(target=writer, args=("second", b, a)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {"first": "first", "second": "second"}
    assert sorted(attempts.values()) == [1, 2]  # exactly one was chosen as the victim and re-run


@pytest.mark.parametrize("server", ["mysql", "postgres"])
def test_a_background_batch_chosen_as_deadlock_victim_is_written_again(server, request):
    """Inside the writer each operation runs in a savepoint; a deadlock ends the whole
    transaction (MariaDB then reports the savepoint missing): the batch is re-run, not lost."""
    import threading

    from lightning_expman.db.writer import BackgroundWriter

    url = request.getfixturevalue(f"{server}_url")
    setup = DatabaseManager(url)
    a, b = (setup.create_experiment(name).id for name in ("a", "b"))
    setup.close()
    barrier = threading.Barrier(2, timeout=30)
    calls = {"writer": 0}
    E = m.Experiment

    def locking(db: DatabaseManager, first: int, second: int, name: str) -> None:
        calls[name] = calls.get(name, 0) + 1
        E.update(desc=name).where(E.id == first).execute(db.database)
        if calls[name] == 1:
            barrier.wait()
        E.update(desc=name).where(E.id == second).execute(db.database)

    other = DatabaseManager(url)
    rival = threading.Thread(
        target=lambda: other.run_in_transaction(lambda: locking(other, b, a, "rival"), what="rival")
    )
    writer_db = DatabaseManager(url)
    writer = BackgroundWriter(writer_db, flush_interval=0.05)
    rival.start()
    writer.submit(locking, writer_db, a, b, "writer")
    writer.close()  # raises if the batch was given up
    rival.join(60)
    other.close()
    writer_db.close()
    assert calls["writer"] + calls["rival"] == 3  # one of them was the victim and ran again
