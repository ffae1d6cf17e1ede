"""BackgroundWriter: batching, flush/close durability, back-pressure, error surfacing, exit paths."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.db.writer import BackgroundWriter
from lightning_expman.errors import DatabaseError


@pytest.fixture
def db(sqlite_url):
    manager = DatabaseManager(sqlite_url)
    yield manager
    manager.close()


@pytest.fixture
def run_id(db) -> int:
    return db.create_trial_run(db.create_trial(db.create_experiment("w").id, "t").id).id


def count(db: DatabaseManager, table: str = "step_metric") -> int:
    # A separate connection: sees only what was committed.
    path = db.database.database
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_close_flushes_everything(db, run_id):
    writer = BackgroundWriter(db, flush_interval=60)  # the timer never fires in this test
    for step in range(500):
        writer.add_steps(run_id, step, step // 100, {"loss": 1.0 / (step + 1), "acc": 0.5})
    writer.add_step(run_id, 500, 5, "loss", float("nan"))
    writer.submit(db.record_epoch_metrics, run_id, 4, [("val_loss", 0.25, None)])
    writer.close()
    assert count(db) == 1001
    assert count(db, "epoch_metric") == 1
    with sqlite3.connect(db.database.database) as con:
        assert con.execute("SELECT value FROM step_metric WHERE step=500").fetchone() == (None,)
        assert con.execute("SELECT epoch FROM step_metric WHERE step=250 LIMIT 1").fetchone() == (2,)


def test_request_flush_writes_without_the_caller_waiting(db, run_id):
    writer = BackgroundWriter(db, flush_interval=60)  # only the request can trigger the write
    writer.add_steps(run_id, 0, 0, {"a": 1.0, "b": 2.0})
    writer.request_flush()
    for _ in range(200):  # the writer thread commits shortly after; poll a separate connection
        if count(db) == 2:
            break
        threading.Event().wait(0.05)
    assert count(db) == 2
    writer.close()


def wait_for(db: DatabaseManager, n: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if count(db) == n:
            return True
        time.sleep(0.02)
    return count(db) == n


def test_requests_soon_after_a_write_share_the_next_one(db, run_id):
    # Epochs of a few milliseconds must not cost a transaction each: a request within
    # request_spacing of the last write waits for it; flush() never waits.
    writer = BackgroundWriter(db, flush_interval=60, request_spacing=0.6)
    writer.add_steps(run_id, 0, 0, {"a": 1.0})
    writer.request_flush()  # nothing written yet: at once
    assert wait_for(db, 1, seconds=0.5)
    writer.add_steps(run_id, 1, 0, {"a": 1.0})
    writer.request_flush()
    writer.add_steps(run_id, 2, 0, {"a": 1.0})
    writer.request_flush()
    time.sleep(0.2)
    assert count(db) == 1  # spaced: not yet
    assert wait_for(db, 3)  # both in the next write, once the spacing has passed
    assert writer._batches == 2
    writer.add_steps(run_id, 3, 0, {"a": 1.0})
    writer.request_flush()
    writer.flush()  # durable now, whatever the spacing
    assert count(db) == 4
    writer.close()


def test_flush_blocks_until_durable_and_writer_is_reusable(db, run_id):
    writer = BackgroundWriter(db, flush_interval=60)
    writer.add_steps(run_id, 0, 0, {"a": 1.0, "b": 2.0})
    assert count(db) == 0  # buffered, not written by the submit
    writer.flush()
    assert count(db) == 2
    writer.close()
    writer.add_steps(run_id, 1, 0, {"a": 1.0})  # a closed writer restarts on the next submit
    writer.close()
    assert count(db) == 3


def test_timer_flushes_without_being_asked(db, run_id):
    writer = BackgroundWriter(db, flush_interval=0.05)
    writer.add_steps(run_id, 0, 0, {"a": 1.0})
    deadline = time.monotonic() + 10
    while count(db) < 1:
        assert time.monotonic() < deadline, "the timer never flushed"
        time.sleep(0.01)
    writer.close()


def test_back_pressure_blocks_the_producer_and_drops_nothing(db, run_id):
    writer = BackgroundWriter(db, flush_interval=0.01, max_pending=10)
    entered, release = threading.Event(), threading.Event()

    def gate() -> None:  # holds the writer thread inside a batch
        entered.set()
        release.wait(30)

    writer.submit(gate)
    assert entered.wait(10)
    seen = []

    def produce() -> None:
        for step in range(100):
            writer.add_step(run_id, step, 0, "loss", float(step))
            seen.append(writer.pending)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.5)
    assert producer.is_alive(), "the producer should block while the buffer is full"
    assert len(seen) == 10 and max(seen) <= 10
    release.set()
    producer.join(30)
    assert not producer.is_alive() and max(seen) <= 10
    writer.close()
    assert count(db) == 100


def test_failure_is_raised_on_the_callers_thread_and_the_rest_of_the_batch_survives(db, run_id):
    writer = BackgroundWriter(db, flush_interval=60)
    writer.add_steps(999_999, 0, 0, {"loss": 1.0})  # unknown run: foreign key violation
    writer.submit(db.record_epoch_metrics, run_id, 0, [("val_loss", 0.5, None)])
    with pytest.raises(DatabaseError, match="background database write failed") as info:
        writer.flush()
    assert info.value.__cause__ is not None
    assert count(db, "epoch_metric") == 1  # the good operation of the same batch was committed
    writer.add_steps(run_id, 1, 0, {"loss": 1.0})
    writer.close()  # the error was reported once
    assert count(db) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="flush_interval"):
        BackgroundWriter(None, flush_interval=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_spacing"):
        BackgroundWriter(None, request_spacing=-1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pending"):
        BackgroundWriter(None, max_pending=0)  # type: ignore[arg-type]


SCRIPT = """
import sys
from lightning_expman import Level
from lightning_expman.tracking import TrackerManager
from lightning_expman.tracking.db import DBTracker

tracker = DBTracker({url!r}, flush_interval=3600)   # only the exit path can write the rows
manager = TrackerManager([tracker])
manager.on_create(Level.EXPERIMENT, name="exit")
manager.on_create(Level.TRIAL, name="t")
manager.on_create(Level.TRIAL_RUN, repeat_idx=1)
manager.on_start(Level.TRIAL_RUN)
manager.on_create(Level.EPOCH, epoch_idx=0)
for step in range(3000):
    manager.track_dict({{"loss": 1.0 / (step + 1), "acc": 0.5}}, step=step, level=Level.BATCH)
manager.track("val_loss", 0.5, level=Level.EPOCH)
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "returncode"),
    # An uncaught KeyboardInterrupt ends CPython by SIGINT (exit status -2), after atexit ran.
    [("raise KeyboardInterrupt", -signal.SIGINT), ("sys.exit(0)", 0), ("pass", 0)],
    ids=["keyboard-interrupt", "sys-exit", "falls-off-the-end"],
)
def test_buffered_rows_survive_process_exit_without_close(tmp_path: Path, ending: str, returncode: int):
    db_file = tmp_path / "exit.db"
    script = textwrap.dedent(SCRIPT.format(url=f"sqlite:///{db_file}", ending=ending))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == returncode, proc.stderr
    with sqlite3.connect(db_file) as con:
        assert con.execute("SELECT count(*) FROM step_metric").fetchone()[0] == 6000
        assert con.execute("SELECT count(*) FROM epoch_metric").fetchone()[0] == 1
        assert con.execute("SELECT status FROM trial_run").fetchone() == ("RUNNING",)


def test_a_batch_abandoned_after_sqlite_ended_the_transaction_reports_the_drivers_error():
    # SQLite rolls a transaction back by itself on some errors (disk full): the batch's attempt
    # without savepoints is then abandoned (_Replay) and the rollback fails. The error reported
    # must be the driver's, not "cannot rollback".
    import peewee as pw

    from lightning_expman.db.base import _first_cause
    from lightning_expman.db.batch import _Replay

    full = pw.OperationalError("database or disk is full")
    try:
        try:
            try:
                raise full
            except pw.OperationalError as e:
                raise _Replay("record_epoch_metrics") from e
        except _Replay:
            raise pw.OperationalError("cannot rollback - no transaction is active") from None
    except pw.OperationalError as rollback:
        assert _first_cause(rollback) is full
