"""Leases: the database's clock, heartbeats (:class:`Lease`), and declaring silent runs LOST
(:func:`reap`, :func:`declare_lost`); read commands see the same verdict without writing
(:func:`status_expression`, :func:`displayed_status`)."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import peewee as pw

from ..db.clock import db_clock, now_sql, older_than
from ..enums import RunStatus
from .identity import process_alive

if TYPE_CHECKING:  # pragma: no cover
    from ..db.manager import DatabaseManager

__all__ = [
    "DEFAULT_STALE_AFTER",
    "UNLEASED_STALE_AFTER",
    "Lease",
    "db_now",
    "declare_lost",
    "displayed_status",
    "heartbeat_interval",
    "reap",
    "status_expression",
]

log = logging.getLogger("lightning_expman.coordination")

DEFAULT_STALE_AFTER = 120.0
"""Seconds of heartbeat silence after which a RUNNING run is declared LOST (the lease length)."""

UNLEASED_STALE_AFTER = 86_400.0
"""The same for runs without a lease (release-1 rows, hand-made ``create_trial_run`` rows)."""


def heartbeat_interval(stale_after: float) -> float:
    """How often a lease of ``stale_after`` seconds is renewed: four beats per lease, at most 10 s."""
    return max(0.05, min(10.0, stale_after / 4))


# --------------------------------------------------------------------------- the database's clock


def _expired(run: Any, backend: str) -> pw.Expression:
    """``run``'s last heartbeat is older than its lease (or the unleased default), on the DB clock."""
    beat = pw.fn.COALESCE(run.heartbeat, run.update_time, run.start_time)
    return older_than(beat, pw.fn.COALESCE(run.lease_s, UNLEASED_STALE_AFTER), backend)


def db_now(manager: DatabaseManager) -> _dt.datetime:
    """The database server's current UTC time (naive), the clock every lease is measured on."""
    db = manager.database
    value = manager._read(
        lambda: db.execute_sql(f"SELECT {now_sql(manager._backend)}").fetchone()[0], "clock"
    )
    return _as_datetime(value)


def _as_datetime(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None)
    return _dt.datetime.fromisoformat(str(value))


# --------------------------------------------------------------------------- reaping and reading


def status_expression(run: Any, backend: str) -> pw.Node:
    """The status column as read commands show it: RUNNING past its lease reads ``LOST``.

    ``run`` is ``TrialRun`` or an alias of it. Nothing is written.
    """
    stale = (run.status == RunStatus.RUNNING.value) & _expired(run, backend)
    return pw.Case(None, [(stale, RunStatus.LOST.value)], run.status)


def displayed_status(status: str, proc: str | None) -> str:
    """``status`` as read from :func:`status_expression`, with this host's dead processes LOST."""
    if status == RunStatus.RUNNING.value and process_alive(proc) is False:
        return RunStatus.LOST.value
    return status


def _lost_error(row: Mapping[str, Any], why: str) -> str:
    beat = row.get("heartbeat")
    when = _as_datetime(beat).isoformat(sep=" ", timespec="seconds") if beat else "its start"
    return f"lost: {why} (last heartbeat {when} UTC, host {row.get('host')}, pid {row.get('pid')})"


def declare_lost(manager: DatabaseManager, run_id: int, why: str) -> bool:
    """Declare one RUNNING run LOST because its holder is known to be gone (e.g. a cluster task
    that failed or was retried); returns whether this call changed it."""
    from ..db import models as m

    TR = m.TrialRun

    def fn() -> bool:
        row = TR.select(TR.heartbeat, TR.host, TR.pid).where(TR.id == run_id).dicts().first(manager.database)
        if row is None:
            return False
        q = TR.update(
            status=RunStatus.LOST.value, error=_lost_error(row, why), end_time=db_clock(manager._backend)
        )
        return bool(
            q.where((TR.id == run_id) & (TR.status == RunStatus.RUNNING.value)).execute(manager.database)
        )

    return manager.run_in_transaction(fn, what=f"declaring run {run_id} lost", idempotent=True)


def reap(manager: DatabaseManager, run_ids: Iterable[int] | None = None) -> list[int]:
    """Declare LOST the RUNNING runs whose lease expired or whose local process is gone.

    Any writer may call it at any time; concurrent reapers agree (each update re-checks the row).

    Args:
        manager: the database.
        run_ids: look only at these runs (default: every RUNNING run in the database).

    Returns:
        The ids of the runs this call declared LOST.
    """
    from ..db import models as m

    TR = m.TrialRun
    backend = manager._backend
    db = manager.database
    fields = (TR.id, TR.heartbeat, TR.host, TR.pid, TR.proc_key, _expired(TR, backend).alias("expired"))

    def fn() -> list[int]:
        q = TR.select(*fields).where(TR.status == RunStatus.RUNNING.value)
        if run_ids is not None:
            q = q.where(TR.id.in_(list(run_ids)))
        lost: list[int] = []
        for row in q.dicts().execute(db):
            if row["expired"]:
                why, still = "no heartbeat within its lease", _expired(TR, backend)
            elif process_alive(row["proc_key"]) is False:
                why, still = "its process is gone", TR.proc_key == row["proc_key"]
            else:
                continue
            n = (
                TR.update(
                    status=RunStatus.LOST.value, error=_lost_error(row, why), end_time=db_clock(backend)
                )
                .where((TR.id == row["id"]) & (TR.status == RunStatus.RUNNING.value) & still)
                .execute(db)
            )
            if n:
                lost.append(row["id"])
        return lost

    lost = manager.run_in_transaction(fn, what="declaring stale runs lost", idempotent=True)
    if lost:
        log.warning("declared %d run(s) LOST (no heartbeat or process gone): %s", len(lost), lost)
    return lost


# --------------------------------------------------------------------------- leases


class Lease:
    """Renew a run's lease from a background thread (not the training loop) until stopped.

    Every ``heartbeat_interval(stale_after)`` seconds the run's ``heartbeat`` is set to the
    database's clock, as long as the row is RUNNING and still held by ``owner``. When the row
    was declared LOST by another process, :attr:`lost` becomes True and renewing stops; when the
    run ended, renewing just stops.

    Example:
        >>> with Lease(db, run_id, owner, stale_after=120):
        ...     trainer.fit(model)
    """

    def __init__(self, manager: DatabaseManager, run_id: int, owner: str, *, stale_after: float) -> None:
        self.manager = manager
        self.run_id = run_id
        self.owner = owner
        self.interval = heartbeat_interval(stale_after)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Lease:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"expman-lease-{self.run_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    status = self.manager.renew_lease(self.run_id, self.owner)
                except Exception as e:  # a missed beat is not fatal: the lease tolerates 3 of 4
                    log.warning("heartbeat of trial run %s failed: %s", self.run_id, e)
                    continue
                if status == RunStatus.RUNNING.value:
                    continue
                if status != RunStatus.LOST.value:
                    return  # ended (its status is settled): nothing left to hold
                self.lost = True
                log.error(
                    "trial run %s was declared LOST by another process (no heartbeat seen within "
                    "its lease); its results will not replace the unit's new run",
                    self.run_id,
                )
                return
        finally:
            self.manager.close_thread_connection()
