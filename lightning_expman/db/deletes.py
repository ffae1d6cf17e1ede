"""Deleting runs and experiments (``expman rm``): every row that belongs to them, and nothing else.

Child rows (epochs, steps, params, RESULTS, link rows, claims) go by ``ON DELETE CASCADE``.
METRIC and ARTIFACT rows are shared through link tables, so they are collected first and deleted
when no link that survives still uses them. A RUNNING run whose lease is alive is never deleted:
its process would keep writing into rows that no longer exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..enums import RunStatus
from . import models as m
from .rows import RowHelpers

__all__ = ["Deleted", "RunDeletes"]


@dataclass
class Deleted:
    """What a deletion removed (or, planned, would remove)."""

    runs: list[int] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)
    experiments: list[int] = field(default_factory=list)
    metrics: int = 0
    artifacts: list[str] = field(default_factory=list)  # locations of the deleted artifact rows


_METRIC_LINKS = (m.EpochMetric, m.ResultsMetric, m.TrialMetric, m.ExperimentMetric, m.ArtifactMetric)
_ARTIFACT_LINKS = (
    m.TrialRunArtifact,
    m.EpochArtifact,
    m.ResultsArtifact,
    m.TrialArtifact,
    m.ExperimentArtifact,
)


class RunDeletes(RowHelpers):
    """``delete_runs``, ``delete_experiment`` (a DatabaseManager mixin)."""

    def delete_runs(self, run_ids: Iterable[int], *, dry_run: bool = False) -> Deleted:
        """Delete trial runs with everything recorded for them (live RUNNING ones are refused).

        Args:
            run_ids: the runs.
            dry_run: compute what would go, delete nothing.

        Raises:
            QueryError: an unknown id, or a run still RUNNING under a live lease.
        """
        ids = sorted(set(int(r) for r in run_ids))

        def fn() -> Deleted:
            self._check_runs(ids)
            return self._delete(ids, trials=[], experiments=[], dry_run=dry_run)

        return (
            self._read(fn, "planning a deletion")
            if dry_run
            else self.run_in_transaction(fn, what=f"deleting {len(ids)} run(s)")
        )

    def delete_experiment(self, experiment_id: int, *, dry_run: bool = False) -> Deleted:
        """Delete an experiment: its trials, runs, metrics, artifacts rows and claims.

        Raises:
            QueryError: an unknown experiment, or one of its runs still RUNNING under a live lease.
        """

        def fn() -> Deleted:
            self._require(m.Experiment, experiment_id, "experiment")
            trials = [
                t
                for (t,) in m.Trial.select(m.Trial.id)
                .where(m.Trial.experiment == experiment_id)
                .tuples()
                .execute(self._db)
            ]
            runs = (
                [
                    r
                    for (r,) in m.TrialRun.select(m.TrialRun.id)
                    .where(m.TrialRun.trial.in_(trials))
                    .tuples()
                    .execute(self._db)
                ]
                if trials
                else []
            )
            self._check_runs(runs)
            return self._delete(runs, trials=trials, experiments=[experiment_id], dry_run=dry_run)

        return (
            self._read(fn, "planning a deletion")
            if dry_run
            else self.run_in_transaction(fn, what=f"deleting experiment {experiment_id}")
        )

    def _check_runs(self, ids: Sequence[int]) -> None:
        from ..coordination import status_expression

        if not ids:
            return
        TR = m.TrialRun
        found = dict(
            TR.select(TR.id, status_expression(TR, self._backend))
            .where(TR.id.in_(list(ids)))
            .tuples()
            .execute(self._db)
        )
        missing = [i for i in ids if i not in found]
        if missing:
            self._require(TR, missing[0], "trial run")
        live = [i for i in ids if found[i] == RunStatus.RUNNING.value]
        if live:
            from ..errors import QueryError

            raise QueryError(
                f"run(s) {', '.join(map(str, live))} in {self.url} are RUNNING with a live lease: "
                "stop them first (or wait until they are LOST)"
            )

    def _delete(
        self, runs: list[int], *, trials: list[int], experiments: list[int], dry_run: bool
    ) -> Deleted:
        db = self._db
        out = Deleted(runs=runs, trials=trials, experiments=experiments)
        owners = (
            (m.EpochMetric.trial_run, runs),
            (m.ResultsMetric.results, runs),
            (m.TrialMetric.trial, trials),
            (m.ExperimentMetric.experiment, experiments),
            (m.TrialRunArtifact.trial_run, runs),
            (m.EpochArtifact.trial_run, runs),
            (m.ResultsArtifact.results, runs),
            (m.TrialArtifact.trial, trials),
            (m.ExperimentArtifact.experiment, experiments),
        )
        metric_ids: set[int] = set()
        artifact_ids: set[int] = set()
        for column, keys in owners:
            if not keys:
                continue
            link = column.model
            target = link.metric if hasattr(link, "metric") else link.artifact
            found = {r for (r,) in link.select(target).where(column.in_(keys)).tuples().execute(db)}
            (metric_ids if hasattr(link, "metric") else artifact_ids).update(found)
        if artifact_ids:  # a checkpoint's metrics go with it
            q = m.ArtifactMetric.select(m.ArtifactMetric.metric).where(
                m.ArtifactMetric.artifact.in_(list(artifact_ids))
            )
            metric_ids.update(r for (r,) in q.tuples().execute(db))
        out.metrics = len(metric_ids)
        out.artifacts = (
            [
                loc
                for (loc,) in m.Artifact.select(m.Artifact.location)
                .where(m.Artifact.id.in_(list(artifact_ids)))
                .tuples()
                .execute(db)
            ]
            if artifact_ids
            else []
        )
        if dry_run:
            return out
        self._forget()
        if runs:
            m.TrialRun.delete().where(m.TrialRun.id.in_(runs)).execute(db)  # cascades to its children
        if experiments:
            m.Experiment.delete().where(m.Experiment.id.in_(experiments)).execute(db)  # trials, claims too
        # Metric and artifact rows linked only from what was deleted go too.
        for ids, model, links in (
            (metric_ids, m.MetricRecord, _METRIC_LINKS),
            (artifact_ids, m.Artifact, _ARTIFACT_LINKS),
        ):
            if not ids:
                continue
            column = "metric" if model is m.MetricRecord else "artifact"
            still = set()
            for link in links:
                field_ = getattr(link, column)
                still.update(
                    r for (r,) in link.select(field_).where(field_.in_(list(ids))).tuples().execute(db)
                )
            orphans = list(ids - still)
            if orphans:
                model.delete().where(model.id.in_(orphans)).execute(db)
        return out
