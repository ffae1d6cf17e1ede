"""Metrics above the trial run (EXPERIMENT and TRIAL level) and the metrics a checkpoint was saved with.

The seed tracks "metrics at experiment, trial and run levels"; its 14 tables only hold run-level
ones (RESULTS, EPOCH). Schema version 3 adds ``experiment_metric``, ``trial_metric`` (each with
the caller's ``step``) and ``artifact_metric``; this mixin writes and reads them.
"""

from __future__ import annotations

from . import models as m
from .bulk import BulkWrites, MetricItems, _metric_items

__all__ = ["LevelMetrics"]


class LevelMetrics(BulkWrites):
    """``record_experiment_metrics``, ``record_trial_metrics``, ``record_artifact_metrics`` and reads."""

    def record_experiment_metrics(
        self, experiment_id: int, metrics: MetricItems, *, step: int | None = None
    ) -> list[m.MetricRecord]:
        """In one transaction: METRIC rows linked to an experiment (``experiment_metric``).

        Args:
            experiment_id: the experiment.
            metrics: ``(name, total_value, per_label_values_or_None)`` triples, or ``{name: value}``.
            step: the caller's step (stored with each link; ``None`` for none).

        Raises:
            QueryError: the experiment does not exist.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> exp = db.create_experiment("e")
            >>> [r.type for r in db.record_experiment_metrics(exp.id, {"best_val_acc": 0.93})]
            ['best_val_acc']
        """
        items = _metric_items(metrics)

        def fn() -> list[m.MetricRecord]:
            self._require(m.Experiment, experiment_id, "experiment")
            return self._insert_linked_metrics(items, m.ExperimentMetric, experiment=experiment_id, step=step)

        return self.run_in_transaction(fn, what=f"record metrics of experiment {experiment_id}")

    def record_trial_metrics(
        self, trial_id: int, metrics: MetricItems, *, step: int | None = None
    ) -> list[m.MetricRecord]:
        """In one transaction: METRIC rows linked to a trial (``trial_metric``); see
        :meth:`record_experiment_metrics`.

        Raises:
            QueryError: the trial does not exist.
        """
        items = _metric_items(metrics)

        def fn() -> list[m.MetricRecord]:
            self._require(m.Trial, trial_id, "trial")
            return self._insert_linked_metrics(items, m.TrialMetric, trial=trial_id, step=step)

        return self.run_in_transaction(fn, what=f"record metrics of trial {trial_id}")

    def record_artifact_metrics(self, artifact_id: int, metrics: MetricItems) -> list[m.MetricRecord]:
        """In one transaction: METRIC rows linked to an artifact (a checkpoint's metrics).

        Raises:
            QueryError: the artifact does not exist.
        """
        items = _metric_items(metrics)

        def fn() -> list[m.MetricRecord]:
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_linked_metrics(items, m.ArtifactMetric, artifact=artifact_id)

        return self.run_in_transaction(fn, what=f"record metrics of artifact {artifact_id}")

    def get_artifact_metrics(self, artifact_id: int) -> list[m.MetricRecord]:
        """The metrics an artifact was recorded with (e.g. a checkpoint's), ordered by id.

        Raises:
            QueryError: the artifact does not exist.
        """

        def fn() -> list[m.MetricRecord]:
            self._require(m.Artifact, artifact_id, "artifact")
            q = (
                m.MetricRecord.select()
                .join(m.ArtifactMetric, on=(m.ArtifactMetric.metric == m.MetricRecord.id))
                .where(m.ArtifactMetric.artifact == artifact_id)
                .order_by(m.MetricRecord.id)
            )
            return self._select(q)

        return self._read(fn, f"get metrics of artifact {artifact_id}")

    def get_level_metrics(self, *, experiment_id: int | None = None, trial_id: int | None = None) -> list:
        """``(metric, step)`` pairs tracked at EXPERIMENT (``experiment_id``) or TRIAL (``trial_id``)
        level itself, not below it, ordered by metric id.

        Raises:
            QueryError: the entity does not exist, or not exactly one id was given.
        """
        from ..errors import QueryError

        if (experiment_id is None) == (trial_id is None):
            raise QueryError("get_level_metrics: give exactly one of experiment_id, trial_id")

        def fn() -> list:
            if experiment_id is not None:
                self._require(m.Experiment, experiment_id, "experiment")
                link, where = m.ExperimentMetric, m.ExperimentMetric.experiment == experiment_id
            else:
                self._require(m.Trial, trial_id, "trial")  # type: ignore[arg-type]
                link, where = m.TrialMetric, m.TrialMetric.trial == trial_id
            q = (
                m.MetricRecord.select(m.MetricRecord, link.step)
                .join(link, on=(link.metric == m.MetricRecord.id))
                .where(where)
                .order_by(m.MetricRecord.id)
                .objects()
            )
            return [(row, row.step) for row in q.execute(self._db)]

        return self._read(fn, "get level metrics")
