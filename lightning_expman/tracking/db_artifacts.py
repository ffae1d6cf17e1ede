"""The database tracker's artifacts: the artifact events of
:class:`~lightning_expman.tracking.db.DBTracker` (:class:`ArtifactEvents`, each a buffered write)
and the writes they submit, run on its background writer thread: checkpoints (linked to their
epoch, the run and RESULTS, with the metrics they were saved with) and removed files (their rows
and links deleted)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..enums import Level
from .db_metrics import MetricEvents
from .normalize import normalize_metric

if TYPE_CHECKING:
    from ..db.manager import DatabaseManager

__all__ = ["ArtifactEvents", "add_checkpoint", "checkpoint_items", "guess_type", "remove_artifact"]

log = logging.getLogger("lightning_expman.tracking.db")  # the tracker's one logger


class ArtifactEvents(MetricEvents):
    """The artifact events of :class:`~lightning_expman.tracking.db.DBTracker` (a mixin: the
    tracker owns the connection, the writer and the open entities; epoch rows are the metric
    events')."""

    def on_add_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        """Record a file linked to the entity at ``level`` (``epoch=`` for EPOCH, default the open one)."""
        level = Level(level)
        link: dict[str, Any] = {}
        if level is Level.EXPERIMENT:
            link["experiment_id"] = self.experiment_id
        elif level is Level.TRIAL:
            link["trial_id"] = self.trial_id
        elif level in (Level.TRIAL_RUN, Level.PIPELINE):
            link["trial_run_id"] = self.trial_run_id
            link["results"] = bool(kwargs.get("results", False))
        else:  # EPOCH, BATCH: the epoch
            idx = self._epoch(kwargs.get("epoch"))
            link["trial_run_id"] = self.trial_run_id
            if idx is not None:
                self._ensure_epoch(idx)
                link["epoch_idx"] = idx
        if all(v is None or v is False for v in link.values()):
            log.warning(
                "DBTracker: artifact %s at %s has no open entity to link to", artifact_path, level.name
            )
            return
        self.writer.submit(
            self.manager.add_artifact,
            artifact_type or guess_type(artifact_path),
            os.fspath(artifact_path),
            **link,
        )

    def on_checkpoint(
        self, network: Any, checkpoint_path: str, metrics: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        """Record a checkpoint linked to its epoch and the run (and RESULTS when ``best=True``);
        ``metrics`` are stored with the checkpoint (``get_artifact_metrics``) the first time its
        path is reported."""
        if self.trial_run_id is None:
            log.warning("DBTracker: checkpoint %s outside a trial run: not recorded", checkpoint_path)
            return
        idx = self._epoch(kwargs.get("epoch"))
        if idx is not None:
            self._ensure_epoch(idx)
        self.writer.submit(
            add_checkpoint,
            self.manager,
            os.fspath(checkpoint_path),
            self.trial_run_id,
            idx,
            bool(kwargs.get("best", False)),
            checkpoint_items(metrics),
        )

    def on_remove_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        """Delete the record of a file that no longer exists (buffered, in order with the adds).

        The rows at ``artifact_path`` (of ``artifact_type`` when given) linked to the entity at
        ``level`` go, with their links: for TRIAL_RUN and below that is the run's own, epoch and
        RESULTS links. Deleted rather than marked: an artifact row promises a file that can be
        opened, and the history of what was best when lives on in the epoch metrics.
        """
        level = Level(level)
        scope: dict[str, int | None]
        if level is Level.EXPERIMENT:
            scope = {"experiment_id": self.experiment_id}
        elif level is Level.TRIAL:
            scope = {"trial_id": self.trial_id}
        else:
            scope = {"trial_run_id": self.trial_run_id}
        if all(v is None for v in scope.values()):
            log.debug("DBTracker: removed artifact %s at %s: no open entity", artifact_path, level.name)
            return
        self.writer.submit(remove_artifact, self.manager, os.fspath(artifact_path), artifact_type, **scope)


def as_id(entity: Any) -> int:
    """Accept a model instance or a bare id from the manager."""
    return int(getattr(entity, "id", entity))


def checkpoint_items(metrics: Mapping[Any, Any] | None) -> list[tuple[str, float | None, Any]]:
    """A checkpoint's metrics as stored items; untracked ones (``Metric.NETWORK``...) dropped."""
    items = []
    for key, value in (metrics or {}).items():
        if getattr(key, "tracked", True):
            items.append(normalize_metric(key, value))
    return items


def add_checkpoint(
    manager: DatabaseManager,
    location: str,
    trial_run_id: int,
    epoch_idx: int | None,
    best: bool,
    metrics: list[tuple[str, float | None, Any]] | None = None,
) -> None:
    """Record a checkpoint linked to its epoch, the run, and RESULTS when best (writer thread).

    A path already recorded for this run (e.g. the best checkpoint reported again when the fit
    ends) gets the missing links instead of a second artifact row.
    """
    from ..db import models as m
    from ..masking import mask_url

    db = manager.database
    found = (
        m.Artifact.select(m.Artifact.id)
        .join(m.TrialRunArtifact, on=(m.TrialRunArtifact.artifact == m.Artifact.id))
        .where(
            (m.TrialRunArtifact.trial_run == trial_run_id)
            & (m.Artifact.type == "checkpoint")
            & (m.Artifact.location == mask_url(location))
        )
        .order_by(m.Artifact.id.desc())
        .first(db)
    )
    if found is None:
        artifact = manager.add_artifact(
            "checkpoint", location, trial_run_id=trial_run_id, epoch_idx=epoch_idx, results=best
        )
        if epoch_idx is not None or best:  # add_artifact linked the epoch/results only: add the run
            manager.link_trial_run_artifact(trial_run_id, as_id(artifact))
        if metrics:
            manager.record_artifact_metrics(as_id(artifact), metrics)
        return
    if epoch_idx is not None:
        linked = m.EpochArtifact.select().where(
            (m.EpochArtifact.trial_run == trial_run_id)
            & (m.EpochArtifact.epoch_idx == epoch_idx)
            & (m.EpochArtifact.artifact == found.id)
        )
        if not linked.exists(db):
            manager.ensure_epoch(trial_run_id, epoch_idx)
            manager.link_epoch_artifact(epoch_idx, trial_run_id, found.id)
    if best:
        linked = m.ResultsArtifact.select().where(
            (m.ResultsArtifact.results == trial_run_id) & (m.ResultsArtifact.artifact == found.id)
        )
        if not linked.exists(db):
            manager.link_results_artifact(trial_run_id, found.id)


def remove_artifact(
    manager: DatabaseManager,
    location: str,
    artifact_type: str | None,
    *,
    experiment_id: int | None = None,
    trial_id: int | None = None,
    trial_run_id: int | None = None,
) -> int:
    """Delete the artifacts at ``location`` linked to one entity, and their links (writer thread).

    Returns the number of artifact rows deleted. A row still linked elsewhere (another entity
    recorded the same file) loses only this entity's links.
    """
    from ..db import models as m
    from ..masking import mask_url

    db = manager.database
    A = m.Artifact
    shown = mask_url(location)
    links: list[tuple[type[m.BaseModel], Any]] = []
    if experiment_id is not None:
        links.append((m.ExperimentArtifact, m.ExperimentArtifact.experiment == experiment_id))
    if trial_id is not None:
        links.append((m.TrialArtifact, m.TrialArtifact.trial == trial_id))
    if trial_run_id is not None:
        links += [
            (m.TrialRunArtifact, m.TrialRunArtifact.trial_run == trial_run_id),
            (m.EpochArtifact, m.EpochArtifact.trial_run == trial_run_id),
            (m.ResultsArtifact, m.ResultsArtifact.results == trial_run_id),
        ]
    all_links = (
        m.ExperimentArtifact,
        m.TrialArtifact,
        m.TrialRunArtifact,
        m.EpochArtifact,
        m.ResultsArtifact,
    )

    def fn() -> int:
        cond = A.location == shown
        if artifact_type:
            cond &= A.type == artifact_type
        linked = None
        for model, where in links:
            ids = A.id.in_(model.select(model.artifact).where(where))
            linked = ids if linked is None else (linked | ids)
        if linked is None:
            return 0
        found = [row.id for row in A.select(A.id).where(cond & linked).execute(db)]
        if not found:
            return 0
        for model, where in links:
            model.delete().where(where & model.artifact.in_(found)).execute(db)
        orphans = [
            aid
            for aid in found
            if not any(model.select().where(model.artifact == aid).exists(db) for model in all_links)
        ]
        if orphans:
            A.delete().where(A.id.in_(orphans)).execute(db)
        return len(orphans)

    return manager.run_in_transaction(fn, what=f"remove artifact {shown!r}")


def guess_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".ckpt", ".pt", ".pth"):
        return "checkpoint"
    if suffix in (".yaml", ".yml", ".json", ".toml"):
        return "config"
    if suffix in (".png", ".jpg", ".jpeg", ".svg", ".pdf", ".html"):
        return "plot"
    if suffix in (".log", ".txt", ".csv"):
        return "log"
    return "file"
