"""The database tracker: the experiment hierarchy in SQL, written through a background writer.

Entities (experiment, trial, trial run) are created synchronously, because their ids are
needed right away; everything produced during training (step values, epoch rows and metrics,
params, artifacts) goes through a :class:`~lightning_expman.db.writer.BackgroundWriter` and
reaches the database in batched transactions: on a ~1 s timer, at every epoch end, when the
run ends, on :meth:`DBTracker.flush` / :meth:`DBTracker.close`, and at interpreter exit.

What each event stores:

==============================  ==========================================================
``on_create(EXPERIMENT)``       ``experiment`` row (get or create by name)
``on_create(TRIAL)``            ``trial`` row (get or create by name in the experiment)
``on_create(TRIAL_RUN)``        ``trial_run`` row, status RUNNING, with repeat/seed/config/context
``on_create(EPOCH)``            ``epoch`` row (buffered)
``track(level=BATCH)``          ``step_metric`` row (run, step, epoch, name, value); per-label
                                values as extra series named ``name/label``
``track(level=EPOCH)``          ``metric`` + ``epoch_metric`` for ``epoch`` (or the open epoch)
``track(level=TRIAL_RUN)``      ``metric`` + ``results_metric`` (final results, e.g. test); with a
                                ``step=`` a point of a series instead: a ``step_metric`` row
``track(level=TRIAL|EXPERIMENT)`` ``metric`` + ``trial_metric`` / ``experiment_metric`` (with ``step``)
``log_params``                  ``run_param`` rows (flattened keys)
``on_add_artifact(level)``      ``artifact`` linked to the experiment/trial/run/epoch
``on_checkpoint``               ``artifact`` "checkpoint" linked to the epoch and run, and to
                                RESULTS when ``best=True``; its ``metrics`` in ``artifact_metric``
``on_remove_artifact(level)``   the ``artifact`` rows at that path linked to the entity (a run:
                                also its epochs and RESULTS) are deleted with their links
``on_end(EPOCH)``               a flush is started (training does not wait for it)
``on_end(TRIAL_RUN)``           flush (waited for), then status / error / stop epoch / end time
==============================  ==========================================================

A value with nowhere to go (no open entity at its level) is not stored; a WARNING says so, once
per metric name and level.

Example:
    >>> from lightning_expman import Level
    >>> from lightning_expman.tracking import TrackerManager, TrackScope
    >>> from lightning_expman.tracking.db import DBTracker
    >>> db = DBTracker("sqlite:///runs/expman.db")
    >>> manager = TrackerManager([db])
    >>> with TrackScope(manager, Level.EXPERIMENT, name="digits"):
    ...     with TrackScope(manager, Level.TRIAL, name="mlp"):
    ...         with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=42):
    ...             manager.track_dict({"train_loss": 0.5}, step=1, level=Level.BATCH)
    >>> db.trial_run_id is None   # the run has ended
    True
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..db.values import flatten as flatten_params
from ..enums import Level, RunStatus
from .base import Tracker
from .db_artifacts import ArtifactEvents, as_id
from .db_metrics import MetricEvents

if TYPE_CHECKING:
    from ..coordination import Lease
    from ..db.manager import DatabaseManager
    from ..db.writer import BackgroundWriter

__all__ = ["DBTracker", "flatten_params"]

log = logging.getLogger(__name__)


class DBTracker(ArtifactEvents, MetricEvents, Tracker):
    """Persist the experiment hierarchy to SQLite, MySQL/MariaDB or PostgreSQL.

    Args:
        url: database URL (``sqlite:///path.db``, ``mysql://user@host/db``,
            ``postgresql://user@host/db``). ``None``: ``sqlite:///<workspace>/expman.db``.
        manager: an open :class:`~lightning_expman.db.manager.DatabaseManager` to use instead
            of a URL (it is not closed by :meth:`close`).
        workspace: folder of the default SQLite file when ``url`` is ``None``.
        flush_interval: seconds between background flushes.
        max_pending: buffered values at which the training thread blocks (back-pressure).
        stale_after: the lease of the runs this tracker creates: a heartbeat thread renews it
            every ``stale_after / 4`` seconds (at most 10 s); a run silent for longer is declared
            LOST by the next process that looks (see :mod:`lightning_expman.coordination`).

    Attributes:
        experiment_id, trial_id, trial_run_id: ids of the open entities (``None`` when closed).

    The tracker is picklable before and after use: the connection and the writer thread are
    created on the first event and dropped by pickling.

    Example:
        >>> tracker = DBTracker(workspace="expman_runs")     # sqlite:///expman_runs/expman.db
        >>> tracker = DBTracker("mysql://root@127.0.0.1:3306/expman", flush_interval=0.5)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        manager: DatabaseManager | None = None,
        workspace: str | Path | None = None,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        stale_after: float | None = None,
    ) -> None:
        if url is None and manager is None:
            if workspace is None:
                from ..errors import ConfigError

                raise ConfigError("DBTracker needs a url, a manager or a workspace (for the SQLite default)")
            url = f"sqlite:///{Path(workspace) / 'expman.db'}"
        # ``url`` is shown (masked) by repr; ``_connect_to`` reopens the database after pickling.
        # For a given manager that is its parsed URL, which keeps the password (its .url masks it).
        self.url = url if url is not None else getattr(manager, "url", None)
        self._connect_to: Any = url if url is not None else getattr(manager, "_url", None)
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        if stale_after is None:
            from ..coordination import DEFAULT_STALE_AFTER

            stale_after = DEFAULT_STALE_AFTER
        self.stale_after = float(stale_after)
        self._manager = manager
        self._owns_manager = manager is None
        self._writer: BackgroundWriter | None = None
        self.experiment_id: int | None = None
        self.trial_id: int | None = None
        self.trial_run_id: int | None = None
        self.epoch_idx: int | None = None
        self._epochs: set[int] = set()  # epoch rows already submitted for the open run
        self._open: list[Level] = []
        self._owner: str | None = None  # the lease token of the open run
        self._lease: Lease | None = None  # renews it, when this tracker holds the lease
        self._warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ lazy resources

    @property
    def manager(self) -> DatabaseManager:
        """The database manager (opened on first use)."""
        if self._manager is None:
            from ..db.manager import DatabaseManager

            if self._connect_to is None:
                raise RuntimeError("DBTracker lost its manager (pickled) and has no url to reopen")
            self._manager = DatabaseManager(self._connect_to)
            self._owns_manager = True
        return self._manager

    @property
    def writer(self) -> BackgroundWriter:
        """The background writer (created on first use)."""
        if self._writer is None:
            from ..db.writer import BackgroundWriter

            self._writer = BackgroundWriter(
                self.manager,
                flush_interval=self.flush_interval,
                max_pending=self.max_pending,
                name="expman-db-writer",
            )
        return self._writer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_writer"] = None
        state["_lease"] = None
        if self._owns_manager or self._connect_to is not None:
            state["_manager"] = None  # reopened from the url in the unpickled copy
            state["_owns_manager"] = True
        return state

    def __repr__(self) -> str:
        from ..masking import mask_url

        return f"DBTracker({mask_url(self.url) if self.url else None!r}, trial_run_id={self.trial_run_id})"

    # ------------------------------------------------------------------ lifecycle

    def on_create(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level is Level.EXPERIMENT:
            self.experiment_id = as_id(
                self.manager.get_or_create_experiment(
                    kwargs.get("name") or "default",
                    kwargs.get("desc") or "",
                    config=kwargs.get("config"),
                    config_hash=kwargs.get("config_hash"),
                    tags=kwargs.get("tags"),
                )
            )
        elif level is Level.TRIAL:
            if self.experiment_id is None:
                log.warning("DBTracker: TRIAL created outside an EXPERIMENT; recording it under 'default'")
                self.on_create(Level.EXPERIMENT, name="default")
            self.trial_id = as_id(
                self.manager.get_or_create_trial(
                    self.experiment_id,
                    kwargs.get("name") or kwargs.get("trial_name") or "default",
                    config=kwargs.get("config"),
                    tags=kwargs.get("tags"),
                )
            )
        elif level is Level.TRIAL_RUN:
            if self.trial_id is None:
                log.warning("DBTracker: TRIAL_RUN created outside a TRIAL; recording it under 'default'")
                self.on_create(Level.TRIAL, name="default")
            self.flush()  # a previous run's buffered rows go first
            self._open_run(kwargs)
        elif level is Level.EPOCH:
            epoch = kwargs.get("epoch_idx", kwargs.get("epoch"))
            if epoch is None:
                epoch = 0 if self.epoch_idx is None else self.epoch_idx + 1
            self.epoch_idx = int(epoch)
            self._ensure_epoch(self.epoch_idx)

    def _open_run(self, kwargs: Mapping[str, Any]) -> None:
        """Adopt the trial run a claim created (``claimed_run_id``; the claimer renews its lease),
        or create one leased to this process (drop-in use) after reaping runs found stale."""
        from ..coordination import Lease, new_owner, reap

        context = kwargs.get("context") or {}
        fields = {
            "seed": kwargs.get("seed"),
            "config": kwargs.get("config"),
            "context": context or None,
            "tags": kwargs.get("tags"),
            "host": kwargs.get("host") or context.get("host") or socket.gethostname(),
            "git_commit": kwargs.get("git_commit") or context.get("git_commit"),
        }
        claimed = kwargs.get("claimed_run_id")
        if claimed is not None:
            self.trial_run_id = int(claimed)
            self._owner = kwargs.get("lease_owner")
            self.manager.describe_trial_run(self.trial_run_id, **fields)
        else:
            reap(self.manager)
            self._owner = new_owner()
            self.trial_run_id = as_id(
                self.manager.create_trial_run(
                    self.trial_id,
                    RunStatus.RUNNING.value,
                    repeat_idx=kwargs.get("repeat_idx"),
                    owner=self._owner,
                    lease_s=self.stale_after,
                    **fields,
                )
            )
            self._lease = Lease(self.manager, self.trial_run_id, self._owner, stale_after=self.stale_after)
            self._lease.start()
        self.epoch_idx = None
        self._epochs = set()
        self.writer.start()  # the flush timer runs from the start of the run

    def continue_run(self, run_id: int, owner: str) -> None:
        """Record into trial run ``run_id`` — re-claimed by this process under lease ``owner`` (see
        :mod:`lightning_expman.continuation`) — instead of the run opened for this fit, which is
        deleted: it was opened a moment ago and holds nothing of its own."""
        from ..coordination import Lease

        self.flush()
        opened, self.trial_run_id = self.trial_run_id, int(run_id)
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.stop()
        if opened is not None and opened != run_id:
            self.manager.delete_trial_run(opened)
        self._owner = owner
        self._lease = Lease(self.manager, self.trial_run_id, owner, stale_after=self.stale_after).start()
        self.epoch_idx = None
        self._epochs = set()

    def on_start(self, level: Level, **kwargs: Any) -> None:
        self._open.append(Level(level))

    def on_end(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level in self._open:
            del self._open[self._open.index(level) :]
        if level is Level.EPOCH:
            # Write the epoch now, without holding up training; run end waits for durability.
            if self._writer is not None:
                self._writer.request_flush()
        elif level is Level.TRIAL_RUN:
            run = self.trial_run_id
            if run is None:
                return
            status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
            error = kwargs.get("error")
            try:
                self.flush()
            except Exception as e:  # the run's data is incomplete: it must not look successful
                if status in (RunStatus.COMPLETED, RunStatus.STOPPED):
                    status = RunStatus.FAILED
                error = error or str(e)
                raise
            finally:
                lease, self._lease = self._lease, None
                if lease is not None:
                    lease.stop()
                try:
                    # Even if buffered rows failed, the run must not stay RUNNING.
                    self.manager.finish_trial_run(
                        run, status.value, error=error, stop_epoch=kwargs.get("stop_epoch"), owner=self._owner
                    )
                finally:
                    self.trial_run_id = None
                    self._owner = None
                    self.epoch_idx = None
                    self._epochs = set()
        elif level is Level.TRIAL:
            self.flush()
            self.trial_id = None
        elif level is Level.EXPERIMENT:
            self.flush()
            self.experiment_id = None

    # ------------------------------------------------------------------ flush / close

    def flush(self) -> None:
        """Block until every buffered write is in the database.

        Raises:
            DatabaseError: a background write failed since the last flush.
        """
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush, stop the writer thread and close an owned connection (reopened on next use)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.stop()
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if self._owns_manager and self._manager is not None:
                self._manager.close()
                self._manager = None
