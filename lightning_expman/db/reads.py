"""The seed's read API: ``get_*_metrics`` and ``get_*_artifacts`` at every level of the hierarchy.

Each call checks that the id it is given exists (unknown ids raise
:class:`~lightning_expman.errors.QueryError`) and returns model instances ordered by id. Tables
and aggregates for people live in :mod:`lightning_expman.query`.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from . import models as m
from .rows import RowHelpers

__all__ = ["SeedReads"]


def _match_runs(field: pw.Field, runs: Any, in_: bool) -> pw.Expression:
    """``field IN (runs subquery)`` or ``field = run id``."""
    return field.in_(runs) if in_ else field == runs


def _run_metric_links(runs: Any, *, in_: bool) -> list[pw.ModelSelect]:
    """Metric-id subqueries of one run (``in_=False``) or of a subquery of runs: epochs', results'."""
    return [
        m.EpochMetric.select(m.EpochMetric.metric).where(_match_runs(m.EpochMetric.trial_run, runs, in_)),
        m.ResultsMetric.select(m.ResultsMetric.metric).where(_match_runs(m.ResultsMetric.results, runs, in_)),
    ]


def _run_artifact_links(runs: Any, *, in_: bool) -> list[pw.ModelSelect]:
    """Artifact-id subqueries of one run or of a subquery of runs: the runs', results', epochs'."""
    return [
        m.TrialRunArtifact.select(m.TrialRunArtifact.artifact).where(
            _match_runs(m.TrialRunArtifact.trial_run, runs, in_)
        ),
        m.ResultsArtifact.select(m.ResultsArtifact.artifact).where(
            _match_runs(m.ResultsArtifact.results, runs, in_)
        ),
        m.EpochArtifact.select(m.EpochArtifact.artifact).where(
            _match_runs(m.EpochArtifact.trial_run, runs, in_)
        ),
    ]


class SeedReads(RowHelpers):
    """``get_*_metrics`` / ``get_*_artifacts`` (mixed into DatabaseManager)."""

    def _linked(self, model: type[m.BaseModel], *links: pw.ModelSelect) -> list:
        """Rows of ``model`` whose id is in any of the ``links`` subqueries, ordered by id."""
        cond = model.id.in_(links[0])
        for link in links[1:]:
            cond |= model.id.in_(link)
        return self._select(model.select().where(cond).order_by(model.id))

    # ------------------------------------------------------------------ metrics

    def get_experiment_metrics(self, experiment_id: int) -> list[m.MetricRecord]:
        """Every metric recorded anywhere under an experiment: its own (EXPERIMENT level), its trials'
        (TRIAL level) and the epoch and results metrics of all its runs.

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> list[m.MetricRecord]:
            self._require(m.Experiment, experiment_id, "experiment")
            trials = m.Trial.select(m.Trial.id).where(m.Trial.experiment == experiment_id)
            runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial.in_(trials))
            return self._linked(
                m.MetricRecord,
                m.ExperimentMetric.select(m.ExperimentMetric.metric).where(
                    m.ExperimentMetric.experiment == experiment_id
                ),
                m.TrialMetric.select(m.TrialMetric.metric).where(m.TrialMetric.trial.in_(trials)),
                *_run_metric_links(runs, in_=True),
            )

        return self._read(fn, f"get metrics of experiment {experiment_id}")

    def get_trial_metrics(self, trial_id: int) -> list[m.MetricRecord]:
        """Every metric recorded under a trial: its own (TRIAL level) and all its runs' epoch and
        results metrics."""

        def fn() -> list[m.MetricRecord]:
            self._require(m.Trial, trial_id, "trial")
            runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial == trial_id)
            return self._linked(
                m.MetricRecord,
                m.TrialMetric.select(m.TrialMetric.metric).where(m.TrialMetric.trial == trial_id),
                *_run_metric_links(runs, in_=True),
            )

        return self._read(fn, f"get metrics of trial {trial_id}")

    def get_trial_run_metrics(self, trial_run_id: int) -> list[m.MetricRecord]:
        """Every metric of a trial run: its epochs' metrics and its results metrics."""

        def fn() -> list[m.MetricRecord]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            return self._linked(m.MetricRecord, *_run_metric_links(trial_run_id, in_=False))

        return self._read(fn, f"get metrics of trial run {trial_run_id}")

    def get_epoch_metrics(self, epoch_idx: int, trial_run_id: int) -> list[m.MetricRecord]:
        """The metrics linked to one epoch (``[]`` for an epoch never created).

        Raises:
            QueryError: the trial run does not exist.
        """

        def fn() -> list[m.MetricRecord]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            q = (
                m.MetricRecord.select()
                .join(m.EpochMetric, on=(m.EpochMetric.metric == m.MetricRecord.id))
                .where((m.EpochMetric.trial_run == trial_run_id) & (m.EpochMetric.epoch_idx == epoch_idx))
                .order_by(m.MetricRecord.id)
            )
            return self._select(q)

        return self._read(fn, f"get metrics of epoch {epoch_idx} of trial run {trial_run_id}")

    # ------------------------------------------------------------------ artifacts

    def get_experiment_artifacts(
        self, experiment_id: int, *, include_children: bool = False
    ) -> list[m.Artifact]:
        """Artifacts linked to an experiment; with ``include_children`` also those of its trials,
        runs, results and epochs. Raises QueryError for an unknown experiment."""

        def fn() -> list[m.Artifact]:
            self._require(m.Experiment, experiment_id, "experiment")
            links = [
                m.ExperimentArtifact.select(m.ExperimentArtifact.artifact).where(
                    m.ExperimentArtifact.experiment == experiment_id
                )
            ]
            if include_children:
                trials = m.Trial.select(m.Trial.id).where(m.Trial.experiment == experiment_id)
                runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial.in_(trials))
                links += [
                    m.TrialArtifact.select(m.TrialArtifact.artifact).where(m.TrialArtifact.trial.in_(trials)),
                    *_run_artifact_links(runs, in_=True),
                ]
            return self._linked(m.Artifact, *links)

        return self._read(fn, f"get artifacts of experiment {experiment_id}")

    def get_trial_artifacts(self, trial_id: int, *, include_children: bool = False) -> list[m.Artifact]:
        """Artifacts linked to a trial; with ``include_children`` also its runs', results' and epochs'."""

        def fn() -> list[m.Artifact]:
            self._require(m.Trial, trial_id, "trial")
            links = [
                m.TrialArtifact.select(m.TrialArtifact.artifact).where(m.TrialArtifact.trial == trial_id)
            ]
            if include_children:
                runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial == trial_id)
                links += _run_artifact_links(runs, in_=True)
            return self._linked(m.Artifact, *links)

        return self._read(fn, f"get artifacts of trial {trial_id}")

    def get_trial_run_artifacts(
        self, trial_run_id: int, *, include_children: bool = False
    ) -> list[m.Artifact]:
        """Artifacts linked to a trial run; with ``include_children`` also its results' and epochs'."""

        def fn() -> list[m.Artifact]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            links = _run_artifact_links(trial_run_id, in_=False)
            return self._linked(m.Artifact, *(links if include_children else links[:1]))

        return self._read(fn, f"get artifacts of trial run {trial_run_id}")

    def get_epoch_artifacts(self, epoch_idx: int, trial_run_id: int) -> list[m.Artifact]:
        """Artifacts linked to one epoch (``[]`` for an epoch never created, as the seed expects).

        Raises:
            QueryError: the trial run does not exist.
        """

        def fn() -> list[m.Artifact]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            return self._linked(
                m.Artifact,
                m.EpochArtifact.select(m.EpochArtifact.artifact).where(
                    (m.EpochArtifact.trial_run == trial_run_id) & (m.EpochArtifact.epoch_idx == epoch_idx)
                ),
            )

        return self._read(fn, f"get artifacts of epoch {epoch_idx} of trial run {trial_run_id}")
