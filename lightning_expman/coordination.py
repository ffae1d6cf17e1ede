"""Who runs what, decided in the database every process shares: claims, leases, heartbeats, reaping.

Any number of ``expman run`` processes, ``--workers``, hosts, cluster tasks and drop-in loggers
pointed at one database agree through four rules:

1. **Claims.** A unit of work — a (trial, repeat) — has one ``claim`` row (unique key). It is
   started only by whoever wins :meth:`Claimer.claim`: a short write transaction (SQLite ``BEGIN
   IMMEDIATE``; MySQL/MariaDB and PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` on the claim row)
   that creates the unit's TRIAL_RUN row, RUNNING, and points the claim at it.
2. **Leases.** A RUNNING trial run carries a lease: ``owner`` (a random token), ``lease_s``
   (seconds of silence tolerated) and ``heartbeat``, renewed by a :class:`Lease` thread every
   ``lease_s / 4`` seconds (at most 10 s). Every time is the **database's** clock
   (``strftime('now')`` / ``UTC_TIMESTAMP(6)`` / ``now() AT TIME ZONE 'UTC'``), never a host's.
3. **Reaping.** :func:`reap` declares LOST every RUNNING run whose heartbeat is older than its
   ``lease_s``, and at once those recorded by a process of this host (same kernel and pid
   namespace) that no longer exists. Writers call it when they look (a claimer, ``expman run``,
   the drop-in logger before a fit); read commands show such runs as LOST without writing
   (:func:`status_expression`, :func:`displayed_status`).
4. **Who may claim.** A unit is free when it has no run, or its run is LOST (infrastructure
   failures are retried by anyone), or its run FAILED/ABORTED before this claimer's session began
   (a failure during the session is not retried by the sessions that saw it happen: run again to
   retry). COMPLETED/STOPPED units are done; RUNNING ones with a live lease are taken.

Decisions: a lost run gets the status ``LOST`` (``RunStatus.LOST``) with the error
``lost: no heartbeat since <time> UTC (host h, pid p)``; the row is kept as history and the unit is
claimed again as a new row. A run found LOST by others while it was in fact alive (a network
partition longer than its lease) is not resurrected when it ends: the unit was handed on.
Rows without a lease (written by release 1, or by hand through ``DatabaseManager``) are
declared LOST after :data:`UNLEASED_STALE_AFTER` without a heartbeat.

Example:
    >>> from lightning_expman.coordination import Claimer, Lease, reap
    >>> claimer = Claimer(db, stale_after=120)      # db: a DatabaseManager
    >>> claimer.register([(trial_id, 1), (trial_id, 2)])
    >>> claim = claimer.claim(trial_id, 1, seed=42)
    >>> if claim is not None:
    ...     with Lease(db, claim.run_id, claim.owner, stale_after=120):
    ...         ...  # train; record into trial run claim.run_id
    >>> reap(db)       # any process, any time: stale RUNNING runs become LOST
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import peewee as pw

from .db.clock import db_clock, now_sql, older_than
from .enums import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from .db.manager import DatabaseManager

__all__ = [
    "DEFAULT_STALE_AFTER",
    "UNLEASED_STALE_AFTER",
    "Claim",
    "Claimer",
    "Lease",
    "UnitState",
    "db_now",
    "displayed_status",
    "heartbeat_interval",
    "new_owner",
    "proc_key",
    "process_alive",
    "reap",
    "status_expression",
]

log = logging.getLogger(__name__)

DEFAULT_STALE_AFTER = 120.0
"""Seconds of heartbeat silence after which a RUNNING run is declared LOST (the lease length)."""

UNLEASED_STALE_AFTER = 86_400.0
"""The same for runs without a lease (release-1 rows, hand-made ``create_trial_run`` rows)."""


def heartbeat_interval(stale_after: float) -> float:
    """How often a lease of ``stale_after`` seconds is renewed: four beats per lease, at most 10 s."""
    return max(0.05, min(10.0, stale_after / 4))


def new_owner() -> str:
    """A fresh lease token (32 hex characters)."""
    return uuid.uuid4().hex


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


# --------------------------------------------------------------------------- this process


@lru_cache(maxsize=1)
def _namespace() -> str:
    """``boot id/pid namespace``: two processes with equal namespaces see each other's pids."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return f"host:{socket.gethostname()}"  # no /proc: pids are compared by host name only


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' without /proc): tells a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def proc_key(pid: int | None = None) -> str:
    """This process's identity as stored with its runs: ``namespace/pid/start ticks``."""
    pid = os.getpid() if pid is None else pid
    return f"{_namespace()}/{pid}/{_start_ticks(pid)}"


def process_alive(key: str | None) -> bool | None:
    """Whether the process identified by ``key`` (see :func:`proc_key`) still runs.

    ``None`` when this process cannot tell (another host, kernel or pid namespace, or no key).
    """
    if not key:
        return None
    parts = key.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != _namespace():
        return None
    pid_text, ticks = parts[1], parts[2]
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return None
    return not ticks or _start_ticks(pid) == ticks


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


def reap(manager: DatabaseManager, run_ids: Iterable[int] | None = None) -> list[int]:
    """Declare LOST the RUNNING runs whose lease expired or whose local process is gone.

    Any writer may call it at any time; concurrent reapers agree (each update re-checks the row).

    Args:
        manager: the database.
        run_ids: look only at these runs (default: every RUNNING run in the database).

    Returns:
        The ids of the runs this call declared LOST.
    """
    from .db import models as m

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


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """A won claim: the new RUNNING trial run and the lease token that holds it."""

    trial_id: int
    repeat_idx: int
    run_id: int
    owner: str
    stale_after: float


@dataclass(frozen=True)
class UnitState:
    """A unit as a claimer sees it: its current run's id and status (LOST when expired)."""

    trial_id: int
    repeat_idx: int
    run_id: int | None
    status: str | None
    claimed_at: _dt.datetime | None

    @property
    def done(self) -> bool:
        return self.status in (RunStatus.COMPLETED.value, RunStatus.STOPPED.value, RunStatus.PRUNED.value)

    @property
    def running(self) -> bool:
        return self.status == RunStatus.RUNNING.value


class Claimer:
    """A claiming session: claims units for this process, with leases of ``stale_after`` seconds.

    The session starts (on the database's clock) when it is created: units that FAILED or were
    ABORTED after that are not claimed again by it.

    Args:
        manager: the shared database.
        stale_after: the lease length of the runs this session starts.
        started: the session's start, when several processes share one session (a launcher and
            its local workers); default: now, on the database's clock.
    """

    def __init__(
        self,
        manager: DatabaseManager,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        started: _dt.datetime | None = None,
    ) -> None:
        self.manager = manager
        self.stale_after = float(stale_after)
        self.started = started if started is not None else db_now(manager)

    def register(
        self, units: Iterable[tuple[int, int]], current: Mapping[tuple[int, int], int] | None = None
    ) -> None:
        """Make sure each ``(trial_id, repeat_idx)`` has its claim row (idempotent, race-safe).

        Args:
            units: the units.
            current: a new row's current run, for units recorded before they had a claim row.
        """
        from .db import models as m

        current = current or {}
        rows = [{"trial": t, "repeat_idx": r, "trial_run": current.get((t, r))} for t, r in units]
        db = self.manager.database

        def fn() -> None:
            for i in range(0, len(rows), 500):
                m.Claim.insert_many(rows[i : i + 500]).on_conflict_ignore().execute(db)

        if rows:
            self.manager.run_in_transaction(fn, what=f"registering {len(rows)} units", idempotent=True)

    def release(self, trial_ids: Iterable[int]) -> int:
        """Hand every unit of these trials that is not RUNNING back to be claimed (a forced re-run).

        Returns:
            The number of units released.
        """
        from .db import models as m

        C, TR = m.Claim, m.TrialRun
        running = TR.select(TR.id).where(TR.status == RunStatus.RUNNING.value)
        ids = list(trial_ids)

        def fn() -> int:
            q = C.update(trial_run=None, claimed_at=None).where(
                C.trial.in_(ids) & C.trial_run.not_in(running)
            )
            return q.execute(self.manager.database)

        return self.manager.run_in_transaction(
            fn, what="releasing units for a forced re-run", idempotent=True
        )

    def states(self, trial_ids: Iterable[int]) -> dict[tuple[int, int], UnitState]:
        """Every registered unit of these trials with its current run's status (one query; no writes)."""
        from .db import models as m

        C, TR = m.Claim, m.TrialRun
        backend = self.manager._backend
        ids = sorted(set(trial_ids))
        if not ids:
            return {}
        q = (
            C.select(
                C.trial, C.repeat_idx, C.trial_run, C.claimed_at, status_expression(TR, backend), TR.proc_key
            )
            .join(TR, pw.JOIN.LEFT_OUTER, on=(C.trial_run == TR.id))
            .where(C.trial.in_(ids))
            .tuples()
        )
        rows = self.manager._read(lambda: list(q.execute(self.manager.database)), "reading unit states")
        return {
            (t, r): UnitState(t, r, run, displayed_status(s, proc) if s else None, _opt_dt(at))
            for t, r, run, at, s, proc in rows
        }

    def claimable(self, state: UnitState | None) -> bool:
        """Whether :meth:`claim` may win this unit (a cheap pre-check on a :meth:`states` snapshot)."""
        if state is None or state.status is None:
            return True
        if state.status == RunStatus.LOST.value:
            return True
        if state.status in (RunStatus.FAILED.value, RunStatus.ABORTED.value):
            return state.claimed_at is None or state.claimed_at < self.started
        return False

    def claim(self, trial_id: int, repeat_idx: int, **run: Any) -> Claim | None:
        """Try to claim unit ``(trial_id, repeat_idx)``; on success its new RUNNING trial run exists.

        Args:
            trial_id, repeat_idx: the unit (:meth:`register` it first).
            **run: fields of the new trial run (``seed``, ``config``, ``context``, ``tags``...).

        Returns:
            The :class:`Claim`, or ``None`` when the unit is done, taken, or not to be retried by
            this session (see the module docstring).
        """
        from .db import models as m

        manager, db, backend = self.manager, self.manager.database, self.manager._backend
        owner = new_owner()
        C, TR = m.Claim, m.TrialRun

        def fn() -> int | None:
            q = C.select(C.id, C.trial_run, C.claimed_at).where(
                (C.trial == trial_id) & (C.repeat_idx == repeat_idx)
            )
            if backend != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises claimers
                q = q.for_update("FOR UPDATE SKIP LOCKED")
            row = q.tuples().execute(db)
            found = list(row)
            if not found:
                return None  # not registered, or another claimer holds the row right now: it decides
            claim_id, run_id, claimed_at = found[0]
            # The unit's current run: taken while its lease lives; reaped first if it expired.
            if run_id is not None and not reap(manager, [run_id]) and not self._free(run_id, claimed_at):
                return None
            new_id = manager.create_trial_run(
                trial_id,
                RunStatus.RUNNING.value,
                repeat_idx=repeat_idx,
                owner=owner,
                lease_s=self.stale_after,
                **run,
            ).id
            C.update(trial_run=new_id, claimed_at=db_clock(backend)).where(C.id == claim_id).execute(db)
            return new_id

        def committed() -> tuple[bool, int | None]:  # the COMMIT's outcome was unknown
            found = TR.select(TR.id).where(TR.owner == owner).tuples().execute(db)
            ids = [r[0] for r in found]
            return bool(ids), (ids[0] if ids else None)

        run_id = manager.run_in_transaction(
            fn, what=f"claiming trial {trial_id} repeat {repeat_idx}", verify=committed
        )
        if run_id is None:
            return None
        return Claim(trial_id, repeat_idx, run_id, owner, self.stale_after)

    def _free(self, run_id: int, claimed_at: Any) -> bool:
        from .db import models as m

        status = (
            m.TrialRun.select(m.TrialRun.status).where(m.TrialRun.id == run_id).scalar(self.manager.database)
        )
        state = UnitState(0, 0, run_id, status, _opt_dt(claimed_at))
        return self.claimable(state)


def _opt_dt(value: Any) -> _dt.datetime | None:
    return None if value is None else _as_datetime(value)
