"""The run lifecycle trackers drive: get-or-create of experiments and trials (race-safe across
processes), a run's params, heartbeat and end.

Get-or-create is serialised between processes per backend: SQLite's ``BEGIN IMMEDIATE`` already
does it, PostgreSQL takes an advisory transaction lock, MySQL/MariaDB a named ``GET_LOCK``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import peewee as pw

from ..enums import RunStatus
from ..masking import mask_url
from . import models as m
from .base import ManagerBase
from .values import _parse_status, _scrub_value, flatten

__all__ = ["RunLifecycle"]


class RunLifecycle(ManagerBase):
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
            return self.run_in_transaction(fn, what=f"get or create experiment {title!r}")

    def get_or_create_trial(
        self, experiment_id: int, name: str, *, config: Mapping[str, Any] | None = None, tags: Any = None
    ) -> m.Trial:
        """The trial ``name`` of an experiment, created when missing (race-safe across processes).

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> m.Trial:
            self._pg_lock(f"trial:{experiment_id}:{name}")
            self._require(m.Experiment, experiment_id, "experiment")
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
                fn, what=f"get or create trial {name!r} of experiment {experiment_id}"
            )

    def finish_trial_run(
        self,
        trial_run_id: int,
        status: RunStatus | str,
        *,
        error: str | None = None,
        stop_epoch: int | None = None,
    ) -> m.TrialRun:
        """Mark a trial run finished: status, ``end_time``, ``update_time`` (and error text / stop epoch).

        Raises:
            QueryError: unknown trial run or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            self._require(m.TrialRun, trial_run_id, "trial run")
            now = m.utcnow()
            values: dict[Any, Any] = {
                m.TrialRun.status: parsed.value,
                m.TrialRun.end_time: now,
                m.TrialRun.update_time: now,
                m.TrialRun.heartbeat: now,
            }
            if error is not None:
                values[m.TrialRun.error] = mask_url(str(error))
            if stop_epoch is not None:
                values[m.TrialRun.stop_epoch] = stop_epoch
            return self._update_run(trial_run_id, values)

        return self.run_in_transaction(fn, what=f"finish trial run {trial_run_id} as {parsed.value}")

    def heartbeat(self, trial_run_id: int) -> None:
        """Refresh a running trial run's heartbeat (a stale heartbeat marks a crashed run)."""

        def fn() -> None:
            now = m.utcnow()
            n = m.TrialRun.update(heartbeat=now).where(m.TrialRun.id == trial_run_id).execute(self._db)
            if not n:
                self._require(m.TrialRun, trial_run_id, "trial run")  # MySQL counts unchanged rows as 0

        self.run_in_transaction(fn, what=f"heartbeat of trial run {trial_run_id}")

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
            q = m.RunParam.insert_many(rows)
            if self._backend == "mysql":
                q = q.on_conflict(preserve=[m.RunParam.value])
            else:
                q = q.on_conflict(
                    conflict_target=[m.RunParam.trial_run, m.RunParam.key], preserve=[m.RunParam.value]
                )
            q.execute(self._db)
            return len(rows)

        return self.run_in_transaction(fn, what=f"log {len(rows)} params of trial run {trial_run_id}")
