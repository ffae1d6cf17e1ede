"""The seed's write API: create the hierarchy (experiment > trial > trial run > epoch), record
metrics and artifacts, link them, and update a run's status.

One call is one transaction (:meth:`~lightning_expman.db.base.ManagerBase.run_in_transaction`);
unknown ids, duplicate links and bad statuses raise :class:`~lightning_expman.errors.QueryError`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import peewee as pw

from ..enums import MetricKey, RunStatus, metric_name
from ..errors import QueryError
from . import models as m
from .clock import db_clock
from .rows import RowHelpers
from .values import _parse_status, _scrub_value

__all__ = ["SeedWrites"]

LinkT = TypeVar("LinkT", bound=m.BaseModel)


class SeedWrites(RowHelpers):
    """``create_*``, ``record_*``, ``link_*`` and ``update_trial_run_status`` (mixed into DatabaseManager)."""

    def create_experiment(
        self,
        title: str,
        desc: str = "",
        *,
        config: Mapping[str, Any] | None = None,
        config_hash: str | None = None,
        tags: Any = None,
    ) -> m.Experiment:
        """Insert an EXPERIMENT row and return it.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> db.create_experiment("CIFAR-10 Classification", "Comparing architectures").id
            1
        """
        return self.run_in_transaction(
            lambda: self._insert_experiment(title, desc, config, config_hash, tags),
            what=f"create experiment {title!r}",
        )

    def create_trial(
        self, experiment_id: int, name: str, *, config: Mapping[str, Any] | None = None, tags: Any = None
    ) -> m.Trial:
        """Insert a TRIAL of experiment ``experiment_id``.

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> m.Trial:
            return self._insert_trial(experiment_id, name, config, tags)

        return self.run_in_transaction(fn, what=f"create trial {name!r} of experiment {experiment_id}")

    def create_trial_run(
        self,
        trial_id: int,
        status: RunStatus | str = "running",
        *,
        repeat_idx: int | None = None,
        seed: int | None = None,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        tags: Any = None,
        host: str | None = None,
        git_commit: str | None = None,
        owner: str | None = None,
        lease_s: float | None = None,
    ) -> m.TrialRun:
        """Insert a TRIAL_RUN of trial ``trial_id`` (host defaults to this machine; heartbeat = now).

        With ``owner`` (a lease token) and ``lease_s`` the run is leased to this process: its
        pid and process key are stored and it must be renewed (``renew_lease``, done by
        :class:`lightning_expman.coordination.Lease`) or it is declared LOST after ``lease_s``
        seconds. Without them the run has no lease holder (the seed's manual use).

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> trial = db.create_trial(db.create_experiment("e").id, "t")
            >>> run = db.create_trial_run(trial.id, status="running", repeat_idx=1, seed=42)
            >>> run.status, run.seed
            ('RUNNING', 42)

        Raises:
            QueryError: unknown trial or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            now = m.utcnow()
            run = self._insert_under(
                m.TrialRun,
                m.Trial,
                trial_id,
                "trial",
                trial=trial_id,
                status=parsed.value,
                start_time=now,
                update_time=now,
                heartbeat=db_clock(self._backend),  # leases are measured on the database's clock
                repeat_idx=repeat_idx,
                seed=seed,
                host=host or socket.gethostname(),
                git_commit=git_commit,
                config=_scrub_value(config),
                context=_scrub_value(context),
                tags=_scrub_value(tags),
                **lease,
            )
            run.heartbeat = now  # the row holds the database's clock, the instance this process's
            return run

        lease: dict[str, Any] = {}
        if owner is not None:
            from ..coordination import DEFAULT_STALE_AFTER, proc_key

            lease = {
                "owner": owner,
                "lease_s": float(lease_s if lease_s is not None else DEFAULT_STALE_AFTER),
                "pid": os.getpid(),
                "proc_key": proc_key(),
            }

        def committed() -> tuple[bool, m.TrialRun | None]:  # a lost COMMIT: did it land?
            row = m.TrialRun.select().where(m.TrialRun.owner == owner).first(self._db)
            return row is not None, row

        return self.run_in_transaction(
            fn, what=f"create trial run of trial {trial_id}", verify=committed if owner else None
        )

    def record_metric(
        self, total_val: float | None, metric_type: MetricKey, per_label_val: Any = None
    ) -> m.MetricRecord:
        """Insert a METRIC row (NaN/inf stored as NULL) and return it; link it with ``add_epoch_metric``
        or ``link_results_metric``.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> db.record_metric(0.87, "f1_score", {"class_0": 0.89, "class_1": 0.85}).per_label_val
            {'class_0': 0.89, 'class_1': 0.85}
        """
        name = metric_name(metric_type)
        return self.run_in_transaction(
            lambda: self._insert_metrics([(name, total_val, per_label_val)])[0],
            what=f"record metric {name!r}",
        )

    def create_epoch(self, epoch_idx: int, trial_run_id: int) -> m.Epoch:
        """Insert EPOCH ``epoch_idx`` of a trial run.

        Raises:
            QueryError: the trial run does not exist, or the epoch already does (see
                :meth:`ensure_epoch` for the idempotent form).
        """

        def fn() -> m.Epoch:
            self._require(m.TrialRun, trial_run_id, "trial run")
            if self._epoch_exists(trial_run_id, epoch_idx):
                raise QueryError(
                    f"epoch {epoch_idx} of trial run {trial_run_id} already exists in {self.url}; "
                    f"use ensure_epoch() to create it only when missing"
                )
            return self._insert(m.Epoch, idx=epoch_idx, trial_run=trial_run_id)

        return self.run_in_transaction(fn, what=f"create epoch {epoch_idx} of trial run {trial_run_id}")

    def ensure_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        """Create EPOCH ``epoch_idx`` of a trial run unless it exists (idempotent, race-safe).

        Raises:
            QueryError: the trial run does not exist.
        """
        self.run_in_transaction(
            lambda: self._ensure_epoch(trial_run_id, epoch_idx),
            what=f"ensure epoch {epoch_idx} of trial run {trial_run_id}",
        )

    def record_artifact(self, artifact_type: str, location: str) -> m.Artifact:
        """Insert an ARTIFACT row (a URL's password in ``location`` is masked) and return it."""
        return self.run_in_transaction(
            lambda: self._insert_artifact(artifact_type, location), what=f"record artifact {artifact_type!r}"
        )

    # ------------------------------------------------------------------ links

    def _link(
        self,
        model: type[LinkT],
        label: str,
        *,
        parent: Callable[[], None],
        linked: tuple[type[m.BaseModel], int, str],
        what: str,
        **values: Any,
    ) -> LinkT:
        """In one transaction: check the parent (``parent()`` raises or creates it), check the
        linked metric/artifact, insert the link row (a duplicate link raises QueryError)."""

        def fn() -> LinkT:
            parent()
            self._require(*linked)
            return self._insert_link(model, label, **values)  # type: ignore[return-value]

        return self.run_in_transaction(fn, what=what)

    def add_epoch_metric(self, epoch_idx: int, trial_run_id: int, metric_id: int) -> m.EpochMetric:
        """Link METRIC ``metric_id`` to an epoch, creating the epoch when it does not exist yet.

        Raises:
            QueryError: unknown trial run or metric; or the link exists already.
        """
        return self._link(
            m.EpochMetric,
            "metric of epoch",
            parent=lambda: self._ensure_epoch(trial_run_id, epoch_idx),
            linked=(m.MetricRecord, metric_id, "metric"),
            what=f"link metric {metric_id} to epoch {epoch_idx}",
            epoch_idx=epoch_idx,
            trial_run=trial_run_id,
            metric=metric_id,
        )

    def link_experiment_artifact(self, experiment_id: int, artifact_id: int) -> m.ExperimentArtifact:
        """Link an artifact to an experiment. Raises QueryError for unknown ids or a duplicate link."""
        return self._link(
            m.ExperimentArtifact,
            "artifact of experiment",
            parent=lambda: self._require(m.Experiment, experiment_id, "experiment"),
            linked=(m.Artifact, artifact_id, "artifact"),
            what=f"link artifact {artifact_id} to experiment {experiment_id}",
            experiment=experiment_id,
            artifact=artifact_id,
        )

    def link_trial_artifact(self, trial_id: int, artifact_id: int) -> m.TrialArtifact:
        """Link an artifact to a trial. Raises QueryError for unknown ids or a duplicate link."""
        return self._link(
            m.TrialArtifact,
            "artifact of trial",
            parent=lambda: self._require(m.Trial, trial_id, "trial"),
            linked=(m.Artifact, artifact_id, "artifact"),
            what=f"link artifact {artifact_id} to trial {trial_id}",
            trial=trial_id,
            artifact=artifact_id,
        )

    def link_trial_run_artifact(self, trial_run_id: int, artifact_id: int) -> m.TrialRunArtifact:
        """Link an artifact to a trial run. Raises QueryError for unknown ids or a duplicate link."""
        return self._link(
            m.TrialRunArtifact,
            "artifact of trial run",
            parent=lambda: self._require(m.TrialRun, trial_run_id, "trial run"),
            linked=(m.Artifact, artifact_id, "artifact"),
            what=f"link artifact {artifact_id} to trial run {trial_run_id}",
            trial_run=trial_run_id,
            artifact=artifact_id,
        )

    def link_results_metric(self, trial_run_id: int, metric_id: int) -> m.ResultsMetric:
        """Link a metric to the RESULTS of a trial run (the RESULTS row is created on demand)."""
        return self._link(
            m.ResultsMetric,
            "metric of results",
            parent=lambda: self._ensure_results(trial_run_id),
            linked=(m.MetricRecord, metric_id, "metric"),
            what=f"link metric {metric_id} to results of trial run {trial_run_id}",
            results=trial_run_id,
            metric=metric_id,
        )

    def link_results_artifact(self, trial_run_id: int, artifact_id: int) -> m.ResultsArtifact:
        """Link an artifact to the RESULTS of a trial run (the RESULTS row is created on demand)."""
        return self._link(
            m.ResultsArtifact,
            "artifact of results",
            parent=lambda: self._ensure_results(trial_run_id),
            linked=(m.Artifact, artifact_id, "artifact"),
            what=f"link artifact {artifact_id} to results of trial run {trial_run_id}",
            results=trial_run_id,
            artifact=artifact_id,
        )

    def link_epoch_artifact(self, epoch_idx: int, trial_run_id: int, artifact_id: int) -> m.EpochArtifact:
        """Link an artifact to an epoch, creating the epoch when it does not exist yet (the seed links
        ``model_epoch_5.pth`` to epoch 5 without creating it first).

        Raises:
            QueryError: unknown trial run or artifact, or a duplicate link.
        """
        return self._link(
            m.EpochArtifact,
            "artifact of epoch",
            parent=lambda: self._ensure_epoch(trial_run_id, epoch_idx),
            linked=(m.Artifact, artifact_id, "artifact"),
            what=f"link artifact {artifact_id} to epoch {epoch_idx}",
            epoch_idx=epoch_idx,
            trial_run=trial_run_id,
            artifact=artifact_id,
        )

    # ------------------------------------------------------------------ status

    def update_trial_run_status(self, trial_run_id: int, status: RunStatus | str) -> m.TrialRun:
        """Set a trial run's status (case-insensitive name, e.g. ``"completed"``) and return the run.

        A status other than RUNNING also sets ``end_time`` when it is not set yet.

        Raises:
            QueryError: unknown trial run or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            self._require(m.TrialRun, trial_run_id, "trial run")
            now = m.utcnow()
            values: dict[Any, Any] = {m.TrialRun.status: parsed.value, m.TrialRun.update_time: now}
            if parsed is not RunStatus.RUNNING:
                values[m.TrialRun.end_time] = pw.fn.COALESCE(m.TrialRun.end_time, now)
            return self._update_run(trial_run_id, values)

        return self.run_in_transaction(
            fn, what=f"update status of trial run {trial_run_id} to {parsed.value}"
        )
