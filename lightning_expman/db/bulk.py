"""The bulk write paths trackers use: step-level series with the driver's fastest batch insert,
an epoch's or a run's results metrics in one transaction, an artifact linked to several levels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from peewee import __exception_wrapper__ as _driver_errors

from ..enums import MetricKey
from ..errors import QueryError
from . import models as m
from .rows import RowHelpers

__all__ = ["BulkWrites", "MetricItems"]

MetricItems = Iterable[tuple[MetricKey, "float | None", "dict | list | None"]] | Mapping[MetricKey, Any]
"""Epoch/results metrics: ``(name, total_value, per_label_values)`` triples, or ``{name: value}``."""

_MYSQL_CHUNK = 5_000  # rows per executemany: pymysql packs them into <1 MB multi-row INSERTs
_PG_PAGE = 5_000  # rows per INSERT statement with execute_values


def _metric_items(metrics: MetricItems) -> list[tuple]:
    """``metrics`` as a list (a transaction may run twice, so an iterator must not be consumed)."""
    return list(metrics.items()) if isinstance(metrics, Mapping) else list(metrics)


def step_value(value: Any) -> float | None:
    """A value as ``step_metric`` stores it: a finite float, or ``None`` (for None, NaN, inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class BulkWrites(RowHelpers):
    """``record_step_metrics``, ``record_epoch_metrics``, ``record_results_metrics``, ``add_artifact``."""

    def record_step_metrics(
        self, rows: Iterable[tuple[int, int, int | None, MetricKey, float | None]]
    ) -> int:
        """THE BULK PATH: store step-level values ``(trial_run_id, step, epoch, name, value)`` in one
        transaction with the driver's fastest batch insert (sqlite3/pymysql ``executemany``,
        psycopg2 ``execute_values``). NaN/inf are stored as NULL.

        Returns:
            The number of rows written.

        Raises:
            QueryError: e.g. a trial run id that does not exist.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> db.record_step_metrics([(run.id, s, 0, "train_loss", 1.0 / (s + 1)) for s in range(100)])
            100
        """
        data: list[tuple] = []
        append = data.append
        for run, step, epoch, name, value in rows:
            append((run, step, epoch, name, step_value(value)))
        return self.write_step_rows(data)

    def write_step_rows(self, data: list[tuple[int, int, int | None, str, float | None]]) -> int:
        """:meth:`record_step_metrics` for rows already in stored form (names as ``str``, values
        finite ``float`` or ``None``; see :func:`step_value`): the background writer's path, which
        builds them in one pass.
        """
        if not data:
            return 0
        return self.run_in_transaction(
            lambda: self._bulk_insert(data), what=f"record {len(data)} step metric values"
        )

    def _bulk_insert(self, data: list[tuple]) -> int:
        """INSERT the rows with the driver's batch call (inside the caller's transaction)."""
        q = self._db.quote
        cols = ", ".join(c.join(q) for c in ("trial_run_id", "step", "epoch", "name", "value"))
        table = "step_metric".join(q)
        cursor = self._db.cursor()
        # Raw driver errors are wrapped like Peewee's own, so _run translates/retries them alike.
        with _driver_errors:
            if self._backend == "postgresql":
                from psycopg2.extras import execute_values

                execute_values(cursor, f"INSERT INTO {table} ({cols}) VALUES %s", data, page_size=_PG_PAGE)
            elif self._backend == "mysql":
                sql = f"INSERT INTO {table} ({cols}) VALUES (%s, %s, %s, %s, %s)"
                for i in range(0, len(data), _MYSQL_CHUNK):
                    cursor.executemany(sql, data[i : i + _MYSQL_CHUNK])
            else:
                cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES (?, ?, ?, ?, ?)", data)
        return len(data)

    def _insert_linked_metrics(
        self, metrics: list[tuple], link: type[m.BaseModel], **link_values: Any
    ) -> list[m.MetricRecord]:
        """Insert METRIC rows and one ``link`` row per metric (``link_values`` + the metric id)."""
        records = self._insert_metrics(metrics)
        if records:
            self._insert_many(link, [{**link_values, "metric": r.id} for r in records])
        return records

    def record_epoch_metrics(
        self, trial_run_id: int, epoch_idx: int, metrics: MetricItems
    ) -> list[m.MetricRecord]:
        """In one transaction: create the epoch if missing, the METRIC rows and their EPOCH_METRIC links.

        Args:
            trial_run_id: the run.
            epoch_idx: the epoch (created when missing).
            metrics: ``(name, total_value, per_label_values_or_None)`` triples, or ``{name: value}``.

        Returns:
            The METRIC rows written.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> rows = [("val_loss", 0.5, None), ("val_acc", 0.9, {"cat": 0.8, "dog": 1.0})]
            >>> [r.type for r in db.record_epoch_metrics(run.id, 0, rows)]
            ['val_loss', 'val_acc']
        """
        metrics = _metric_items(metrics)

        def fn() -> list[m.MetricRecord]:
            self._ensure_epoch(trial_run_id, epoch_idx)
            return self._insert_linked_metrics(
                metrics, m.EpochMetric, epoch_idx=epoch_idx, trial_run=trial_run_id
            )

        return self.run_in_transaction(
            fn, what=f"record metrics of epoch {epoch_idx} of trial run {trial_run_id}"
        )

    def record_results_metrics(self, trial_run_id: int, metrics: MetricItems) -> list[m.MetricRecord]:
        """In one transaction: the RESULTS row if missing, the METRIC rows and their RESULTS_METRIC links.

        Same ``metrics`` shapes as :meth:`record_epoch_metrics`.
        """
        metrics = _metric_items(metrics)

        def fn() -> list[m.MetricRecord]:
            self._ensure_results(trial_run_id)
            return self._insert_linked_metrics(metrics, m.ResultsMetric, results=trial_run_id)

        return self.run_in_transaction(fn, what=f"record results metrics of trial run {trial_run_id}")

    def add_artifact(
        self,
        artifact_type: str,
        location: str,
        *,
        experiment_id: int | None = None,
        trial_id: int | None = None,
        trial_run_id: int | None = None,
        epoch_idx: int | None = None,
        results: bool = False,
    ) -> m.Artifact:
        """Record an artifact and link it, in one transaction, to every level given.

        ``epoch_idx`` and ``results`` need ``trial_run_id``; the epoch / RESULTS row is created when
        missing. With ``epoch_idx`` or ``results`` the artifact is linked to that epoch / the
        results, not to the run itself.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> a = db.add_artifact("checkpoint", "/ckpt/epoch=2.ckpt", trial_run_id=run.id, epoch_idx=2)
            >>> [x.location for x in db.get_epoch_artifacts(2, run.id)]
            ['/ckpt/epoch=2.ckpt']

        Raises:
            QueryError: an unknown id, or ``epoch_idx``/``results`` without ``trial_run_id``.
        """
        if (epoch_idx is not None or results) and trial_run_id is None:
            raise QueryError(
                f"add_artifact({artifact_type!r}, {location!r}): epoch_idx / results need trial_run_id"
            )

        def fn() -> m.Artifact:
            art = self._insert_artifact(artifact_type, location)
            if experiment_id is not None:
                self._require(m.Experiment, experiment_id, "experiment")
                self._insert(m.ExperimentArtifact, experiment=experiment_id, artifact=art.id)
            if trial_id is not None:
                self._require(m.Trial, trial_id, "trial")
                self._insert(m.TrialArtifact, trial=trial_id, artifact=art.id)
            if trial_run_id is not None:
                if epoch_idx is not None:
                    self._ensure_epoch(trial_run_id, epoch_idx)
                    self._insert(
                        m.EpochArtifact, epoch_idx=epoch_idx, trial_run=trial_run_id, artifact=art.id
                    )
                if results:
                    self._ensure_results(trial_run_id)
                    self._insert(m.ResultsArtifact, results=trial_run_id, artifact=art.id)
                if epoch_idx is None and not results:
                    self._insert_under(
                        m.TrialRunArtifact,
                        m.TrialRun,
                        trial_run_id,
                        "trial run",
                        trial_run=trial_run_id,
                        artifact=art.id,
                    )
            return art

        return self.run_in_transaction(fn, what=f"add artifact {artifact_type!r}")
