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
claimed again as a new row — or, continuing from its last checkpoint, the same row is claimed
again (``claim(..., continue_run=id)``, :func:`reclaim`; see :mod:`lightning_expman.continuation`).
A run found LOST by others while it was in fact alive (a network partition longer than its
lease) is not resurrected when it ends: the unit was handed on.
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

Public entry points: :class:`Claimer` (``register``, ``claim``, ``adopt``, ``states``,
``release``), :class:`Lease`, :func:`reap`, :func:`declare_lost`, and for readers
:func:`status_expression` / :func:`displayed_status`.
"""

from __future__ import annotations

from .claims import Claim, Claimer, UnitState, reclaim
from .identity import new_owner, proc_key, process_alive
from .leases import (
    DEFAULT_STALE_AFTER,
    UNLEASED_STALE_AFTER,
    Lease,
    db_now,
    declare_lost,
    displayed_status,
    heartbeat_interval,
    reap,
    status_expression,
)

__all__ = [
    "DEFAULT_STALE_AFTER",
    "UNLEASED_STALE_AFTER",
    "Claim",
    "Claimer",
    "Lease",
    "UnitState",
    "db_now",
    "declare_lost",
    "displayed_status",
    "heartbeat_interval",
    "new_owner",
    "proc_key",
    "process_alive",
    "reap",
    "reclaim",
    "status_expression",
]
