"""Claims: who runs a unit of work (a (trial, repeat)), decided on its ``claim`` row."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import peewee as pw

from ..db.clock import db_clock
from ..enums import RunStatus
from .identity import new_owner, proc_key
from .leases import (
    DEFAULT_STALE_AFTER,
    _as_datetime,
    db_now,
    declare_lost,
    displayed_status,
    reap,
    status_expression,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..db.manager import DatabaseManager

__all__ = ["Claim", "Claimer", "UnitState", "reclaim"]

log = logging.getLogger("lightning_expman.coordination")


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
        from ..db import models as m

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
        from ..db import models as m

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
        from ..db import models as m

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
        shown = {run: displayed_status(s, proc) if s else None for _, _, run, _, s, proc in rows}
        # A run read RUNNING whose process is gone now may have finished between the read and the
        # check (a launcher records its last run, then exits): read those again; a process that
        # is gone writes no more, so what the second read says is final.
        gone = [run for _, _, run, _, s, _ in rows if s == RunStatus.RUNNING.value and shown[run] != s]
        if gone:
            again = TR.select(TR.id, status_expression(TR, backend)).where(TR.id.in_(gone)).tuples()
            now = self.manager._read(lambda: dict(again.execute(self.manager.database)), "reading units")
            running, lost = RunStatus.RUNNING.value, RunStatus.LOST.value
            shown.update({run: lost if s == running else s for run, s in now.items()})
        return {(t, r): UnitState(t, r, run, shown[run], _opt_dt(at)) for t, r, run, at, _, _ in rows}

    def claimable(self, state: UnitState | None) -> bool:
        """Whether :meth:`claim` may win this unit (a cheap pre-check on a :meth:`states` snapshot)."""
        if state is None or state.status is None:
            return True
        if state.status == RunStatus.LOST.value:
            return True
        if state.status in (RunStatus.FAILED.value, RunStatus.ABORTED.value):
            return state.claimed_at is None or state.claimed_at < self.started
        return False

    def claim(
        self,
        trial_id: int,
        repeat_idx: int,
        *,
        continue_run: int | None = None,
        register: bool = False,
        **run: Any,
    ) -> Claim | None:
        """Try to claim unit ``(trial_id, repeat_idx)``; on success its new RUNNING trial run exists.

        Args:
            trial_id, repeat_idx: the unit (:meth:`register` it first).
            continue_run: continue this trial run instead of creating one (see
                :mod:`lightning_expman.continuation`): won only while it is still the unit's
                current run and free by the same rules; it then goes back to RUNNING under a new
                lease with ``attempts`` + 1 (``run`` fields are not applied).
            register: :meth:`register` the unit in the same transaction (one round trip fewer
                for a unit created just now, such as a sampled search trial's).
            **run: fields of the new trial run (``seed``, ``config``, ``context``, ``tags``...).

        Returns:
            The :class:`Claim`, or ``None`` when the unit is done, taken, or not to be retried by
            this session (see the module docstring).
        """
        from ..db import models as m

        manager, db, backend = self.manager, self.manager.database, self.manager._backend
        owner = new_owner()
        C, TR = m.Claim, m.TrialRun

        def fn() -> int | None:
            if register:
                C.insert(trial=trial_id, repeat_idx=repeat_idx, trial_run=None).on_conflict_ignore().execute(
                    db
                )
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
            if continue_run is not None:
                if run_id != continue_run:
                    return None  # the unit moved on (another process ran it): nothing to continue
                _continue_row(manager, run_id, owner, self.stale_after)
                C.update(claimed_at=db_clock(backend)).where(C.id == claim_id).execute(db)
                return run_id
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

    def adopt(self, claim: Claim, **run: Any) -> Claim | None:
        """Take over ``claim``, won by another process that hands the unit to this one (a cluster
        driver submitting it as a task): the run's lease passes to a new token of this process.

        When the hand-over already happened once — the task is a retry after its first attempt
        died — that attempt's run is declared LOST and the unit is claimed anew (so nothing is
        recorded twice). Returns ``None`` when the unit went to someone else meanwhile.
        """
        from ..db import models as m

        TR = m.TrialRun
        owner = new_owner()
        db, backend = self.manager.database, self.manager._backend
        handed = (TR.id == claim.run_id) & (TR.owner == claim.owner) & (TR.status == RunStatus.RUNNING.value)

        def fn() -> bool:
            values = {
                "owner": owner,
                "pid": os.getpid(),
                "proc_key": proc_key(),
                "host": socket.gethostname(),
            }
            return bool(TR.update(heartbeat=db_clock(backend), **values).where(handed).execute(db))

        def committed() -> tuple[bool, bool]:
            return TR.select().where((TR.id == claim.run_id) & (TR.owner == owner)).exists(db), True

        if self.manager.run_in_transaction(fn, what=f"adopting trial run {claim.run_id}", verify=committed):
            return Claim(claim.trial_id, claim.repeat_idx, claim.run_id, owner, claim.stale_after)
        declare_lost(self.manager, claim.run_id, "its task was retried after its first attempt died")
        return self.claim(claim.trial_id, claim.repeat_idx, **run)

    def _free(self, run_id: int, claimed_at: Any) -> bool:
        from ..db import models as m

        status = (
            m.TrialRun.select(m.TrialRun.status).where(m.TrialRun.id == run_id).scalar(self.manager.database)
        )
        state = UnitState(0, 0, run_id, status, _opt_dt(claimed_at))
        return self.claimable(state)


def _continue_row(manager: DatabaseManager, run_id: int, owner: str, stale_after: float) -> None:
    """Put a finished or lost trial run back to RUNNING under a new lease (inside the caller's
    transaction): one more attempt of the same row."""
    from ..db import models as m

    TR = m.TrialRun
    TR.update(
        {
            TR.status: RunStatus.RUNNING.value,
            TR.attempts: pw.fn.COALESCE(TR.attempts, 1) + 1,
            TR.owner: owner,
            TR.lease_s: float(stale_after),
            TR.pid: os.getpid(),
            TR.proc_key: proc_key(),
            TR.heartbeat: db_clock(manager._backend),
            TR.update_time: m.utcnow(),
            TR.end_time: None,
            TR.error: None,
            TR.stop_epoch: None,
        }
    ).where(TR.id == run_id).execute(manager.database)


def reclaim(
    manager: DatabaseManager,
    run_id: int,
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
    take_over: str | None = None,
) -> Claim | None:
    """Continue trial run ``run_id`` in this process: RUNNING again, ``attempts`` + 1, a new lease.

    The drop-in logger's counterpart of :meth:`Claimer.claim` with ``continue_run`` (a drop-in
    run has no claim row): one short write transaction that locks the run's row (SQLite ``BEGIN
    IMMEDIATE``; MySQL/PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``), reaps it when its lease
    expired or its process is gone, and takes it unless it is RUNNING under a live lease.

    Args:
        manager: the database.
        run_id: the run to continue.
        stale_after: the new lease's length.
        take_over: a RUNNING run still leased to this token is taken anyway: its holder is known
            to be dead (a SLURM job requeued under the same job id).

    Returns:
        The :class:`Claim` (``repeat_idx`` from the row), or ``None`` when the run does not
        exist, is being decided by another process, or runs under a live lease.
    """
    from ..db import models as m

    TR = m.TrialRun
    db, backend = manager.database, manager._backend
    owner = new_owner()

    def fn() -> tuple[int, int] | None:
        q = TR.select(TR.trial, TR.repeat_idx, TR.status, TR.owner).where(TR.id == run_id)
        if backend != "sqlite":
            q = q.for_update("FOR UPDATE SKIP LOCKED")
        found = list(q.tuples().execute(db))
        if not found:
            return None
        trial_id, repeat_idx, status, holder = found[0]
        live = status == RunStatus.RUNNING.value and not reap(manager, [run_id])
        if live and (take_over is None or holder != take_over):
            return None
        _continue_row(manager, run_id, owner, stale_after)
        return trial_id, repeat_idx or 0

    def committed() -> tuple[bool, tuple[int, int] | None]:
        row = TR.select(TR.trial, TR.repeat_idx).where((TR.id == run_id) & (TR.owner == owner)).tuples()
        rows = list(row.execute(db))
        return bool(rows), ((rows[0][0], rows[0][1] or 0) if rows else None)

    won = manager.run_in_transaction(fn, what=f"continuing trial run {run_id}", verify=committed)
    if won is None:
        return None
    return Claim(won[0], won[1], run_id, owner, float(stale_after))


def _opt_dt(value: Any) -> _dt.datetime | None:
    return None if value is None else _as_datetime(value)
