"""The run lifecycle trackers drive: get-or-create of experiments and trials (race-safe across
processes), a run's params, heartbeat and end.

Get-or-create is serialised between processes per backend: SQLite's ``BEGIN IMMEDIATE`` already
does it, PostgreSQL takes an advisory transaction lock, MySQL/MariaDB a named ``GET_LOCK``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import peewee as pw

from ..enums import RunStatus
from ..masking import mask_text
from . import models as m
from .clock import db_clock
from .rows import RowHelpers
from .values import _parse_status, _scrub_value, flatten

__all__ = ["RunLifecycle"]

log = logging.getLogger("lightning_expman.db.manager")


class RunLifecycle(RowHelpers):
    """``get_or_create_*``, ``log_params``, ``heartbeat``, ``finish_trial_run`` (a DatabaseManager mixin)."""

    @contextmanager
    def _serialized(self, key: str) -> Iterator[None]:
        """Serialise get-or-create between processes on MySQL (SQLite: BEGIN IMMEDIATE already does;
        PostgreSQL: an advisory transaction lock taken inside the transaction, see _pg_lock)."""
        if self._backend != "mysql":
            yield
            return
        # GET_LOCK names are at most 64 characters: hash the (database, key) pair
        name = "expman." + hashlib.sha1(f"{self._db.database}\0{key}".encode()).hexdigest()
        with self._guard():
            self._read(lambda: self._db.execute_sql("SELECT GET_LOCK(%s, 30)", (name,)), "get-or-create lock")
            try:
                yield
            finally:
                try:
                    self._db.execute_sql("SELECT RELEASE_LOCK(%s)", (name,))
                except pw.PeeweeException:  # a lost connection released it already
                    pass

    def _pg_lock(self, key: str) -> None:
        if self._backend == "postgresql":
            self._db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def get_or_create_experiment(
        self,
        title: str,
        desc: str = "",
        *,
        config: Mapping[str, Any] | None = None,
        config_hash: str | None = None,
        tags: Any = None,
    ) -> m.Experiment:
        """The (oldest) experiment titled ``title``, created when there is none (race-safe across processes).

        An existing experiment is returned unchanged: compare its ``config_hash`` to decide whether to resume.
        """

        def fn() -> m.Experiment:
            self._pg_lock(f"experiment:{title}")
            found = (
                m.Experiment.select()
                .where(m.Experiment.title == title)
                .order_by(m.Experiment.id)
                .first(self._db)
            )
            if found is not None:
                return found
            return self._insert_experiment(title, desc, config, config_hash, tags)

        with self._serialized(f"experiment:{title}"):
            return self.run_in_transaction(fn, what=f"get or create experiment {title!r}", idempotent=True)

    def get_or_create_trial(
        self, experiment_id: int, name: str, *, config: Mapping[str, Any] | None = None, tags: Any = None
    ) -> m.Trial:
        """The trial ``name`` of an experiment, created when missing (race-safe across processes).

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> m.Trial:
            self._pg_lock(f"trial:{experiment_id}:{name}")
            found = (
                m.Trial.select()
                .where((m.Trial.experiment == experiment_id) & (m.Trial.name == name))
                .order_by(m.Trial.id)
                .first(self._db)
            )
            if found is not None:
                return found
            return self._insert_trial(experiment_id, name, config, tags)

        with self._serialized(f"trial:{experiment_id}:{name}"):
            return self.run_in_transaction(
                fn, what=f"get or create trial {name!r} of experiment {experiment_id}", idempotent=True
            )

    def finish_trial_run(
        self,
        trial_run_id: int,
        status: RunStatus | str,
        *,
        error: str | None = None,
        stop_epoch: int | None = None,
        owner: str | None = None,
    ) -> bool:
        """Mark a trial run finished: status, ``end_time``, ``update_time`` (and error text / stop epoch).

        Args:
            owner: the lease token the run was created with. Given, the row is changed only while
                that lease holds it: a run another process declared LOST (and whose unit it handed
                on) keeps that status.

        Returns:
            Whether the row was written (``False``: ``owner`` no longer holds the run; a warning
            says so). Read the row back with ``get_trial_run`` when you need it.

        Raises:
            QueryError: unknown trial run or status.
        """
        parsed = _parse_status(status)

        def fn() -> bool:
            now = m.utcnow()
            values: dict[Any, Any] = {
                m.TrialRun.status: parsed.value,
                m.TrialRun.end_time: now,
                m.TrialRun.update_time: now,
                m.TrialRun.heartbeat: db_clock(self._backend),
            }
            if error is not None:
                values[m.TrialRun.error] = mask_text(str(error))
            if stop_epoch is not None:
                values[m.TrialRun.stop_epoch] = stop_epoch
            this = m.TrialRun.id == trial_run_id
            held = (m.TrialRun.owner == owner) & (m.TrialRun.status != RunStatus.LOST.value)
            where = this & held if owner is not None else this
            if m.TrialRun.update(values).where(where).execute(self._db):
                return True
            # No row changed: an unknown id, or not held any more (MySQL also counts a row
            # whose values were already those as unchanged, hence the second check).
            row = m.TrialRun.select(m.TrialRun.status).where(this).get_or_none(self._db)
            if row is None:
                raise self._missing("trial run", trial_run_id)
            if owner is None or m.TrialRun.select().where(this & held).exists(self._db):
                return True
            log.warning(
                "trial run %s is %s (no longer held by this process): not recording it %s",
                trial_run_id,
                row.status,
                parsed.value,
            )
            return False

        return self.run_in_transaction(
            fn, what=f"finish trial run {trial_run_id} as {parsed.value}", idempotent=True
        )

    def describe_trial_run(
        self,
        trial_run_id: int,
        *,
        seed: int | None = None,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        tags: Any = None,
        host: str | None = None,
        git_commit: str | None = None,
    ) -> None:
        """Fill in what is known once a claimed run starts (the claim created the row); secrets masked.

        Raises:
            QueryError: unknown trial run.
        """
        values = {
            m.TrialRun.seed: seed,
            m.TrialRun.config: _scrub_value(config),
            m.TrialRun.context: _scrub_value(context),
            m.TrialRun.tags: _scrub_value(tags),
            m.TrialRun.host: host,
            m.TrialRun.git_commit: git_commit,
        }
        values = {k: v for k, v in values.items() if v is not None}

        def fn() -> None:
            # MySQL counts a row whose values were already those as unchanged: then look it up.
            this = m.TrialRun.id == trial_run_id
            if not values or not m.TrialRun.update(values).where(this).execute(self._db):
                self._require(m.TrialRun, trial_run_id, "trial run")

        self.run_in_transaction(fn, what=f"describe trial run {trial_run_id}", idempotent=True)

    def add_to_context(self, trial_run_id: int, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into a trial run's ``context`` (top-level keys replaced); secrets masked."""

        def fn() -> None:
            row = m.TrialRun.select(m.TrialRun.context).where(m.TrialRun.id == trial_run_id).first(self._db)
            if row is None:
                return
            merged = {**(row.context or {}), **dict(values)}
            m.TrialRun.update(context=_scrub_value(merged)).where(m.TrialRun.id == trial_run_id).execute(
                self._db
            )

        self.run_in_transaction(fn, what=f"add to the context of trial run {trial_run_id}", idempotent=True)

    def delete_trial_run(self, trial_run_id: int) -> None:
        """Delete a trial run with everything recorded for it (artifacts only it links included)."""
        TRA = m.TrialRunArtifact

        def fn() -> None:
            ids = [
                r[0]
                for r in TRA.select(TRA.artifact)
                .where(TRA.trial_run == trial_run_id)
                .tuples()
                .execute(self._db)
            ]
            m.Claim.update(trial_run=None).where(m.Claim.trial_run == trial_run_id).execute(self._db)
            m.TrialRun.delete().where(m.TrialRun.id == trial_run_id).execute(self._db)  # links cascade
            self._forget()
            if ids:
                m.Artifact.delete().where(m.Artifact.id.in_(ids)).execute(self._db)

        self.run_in_transaction(fn, what=f"delete trial run {trial_run_id}", idempotent=True)

    def _get_run(self, trial_run_id: int) -> m.TrialRun:
        return m.TrialRun.select().where(m.TrialRun.id == trial_run_id).get(self._db)

    def heartbeat(self, trial_run_id: int) -> None:
        """Refresh a trial run's heartbeat on the database's clock (a stale heartbeat marks a lost run)."""

        def fn() -> None:
            n = (
                m.TrialRun.update(heartbeat=db_clock(self._backend))
                .where(m.TrialRun.id == trial_run_id)
                .execute(self._db)
            )
            if not n:
                self._require(m.TrialRun, trial_run_id, "trial run")  # MySQL counts unchanged rows as 0

        self.run_in_transaction(fn, what=f"heartbeat of trial run {trial_run_id}", idempotent=True)

    def renew_lease(self, trial_run_id: int, owner: str) -> str | None:
        """Renew the lease ``owner`` holds on a RUNNING trial run.

        Returns:
            The run's status: ``"RUNNING"`` when renewed; ``"LOST"`` when another process declared
            it lost; a finished status when it ended; ``None`` when it is not held by ``owner``.
        """
        TR = m.TrialRun
        mine = (TR.id == trial_run_id) & (TR.owner == owner)

        def fn() -> str | None:
            running = mine & (TR.status == RunStatus.RUNNING.value)
            if TR.update(heartbeat=db_clock(self._backend)).where(running).execute(self._db):
                return RunStatus.RUNNING.value
            return TR.select(TR.status).where(mine).scalar(self._db)  # MySQL counts unchanged rows as 0

        return self.run_in_transaction(fn, what=f"lease of trial run {trial_run_id}", idempotent=True)

    def log_params(self, trial_run_id: int, params: Mapping[str, Any]) -> int:
        """Store a run's hyperparameters, flattened to dotted keys (``{"model": {"lr": 0.1}}`` ->
        ``model.lr``), replacing earlier values of the same keys. Secrets are masked.

        Returns:
            The number of keys written.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> db.log_params(run.id, {"model": {"lr": 0.1, "layers": [2, 4]}, "seed": 3})
            3
        """
        flat = _scrub_value(flatten(params))  # dotted keys: "aws.secret_key" is masked too
        rows = [{"trial_run": trial_run_id, "key": k[:255], "value": v} for k, v in flat.items()]
        if not rows:
            return 0

        def fn() -> int:
            self._require(m.TrialRun, trial_run_id, "trial run")
            self._insert_many(m.RunParam, rows, update=("value",))
            return len(rows)

        return self.run_in_transaction(
            fn, what=f"log {len(rows)} params of trial run {trial_run_id}", idempotent=True
        )
