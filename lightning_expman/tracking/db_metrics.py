"""Where the database tracker puts values: the metric events of
:class:`~lightning_expman.tracking.db.DBTracker` (see its module table), each a buffered write.

BATCH values become ``step_metric`` rows (the hot path: one append to the writer's buffer), EPOCH
values ``epoch_metric`` rows of the open (or given) epoch, TRIAL_RUN values results, TRIAL and
EXPERIMENT values ``trial_metric`` / ``experiment_metric`` rows. A value with nowhere to go is
dropped with a WARNING, once per metric name and level.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..db.values import flatten as flatten_params
from ..enums import Level

if TYPE_CHECKING:
    from ..db.manager import DatabaseManager
    from ..db.writer import BackgroundWriter

__all__ = ["MetricEvents"]

log = logging.getLogger("lightning_expman.tracking.db")  # the tracker's one logger


class MetricEvents:
    """The metric events of :class:`~lightning_expman.tracking.db.DBTracker` (a mixin: the
    tracker owns the connection, the writer and the open entities)."""

    if TYPE_CHECKING:
        manager: DatabaseManager
        writer: BackgroundWriter
        experiment_id: int | None
        trial_id: int | None
        trial_run_id: int | None
        epoch_idx: int | None
        _epochs: set[int]
        _open: list[Level]
        _warned: set[tuple[str, str]]

    def _ensure_epoch(self, epoch: int) -> None:
        if epoch not in self._epochs and self.trial_run_id is not None:
            self._epochs.add(epoch)
            self.writer.submit(self.manager.ensure_epoch, self.trial_run_id, epoch)

    def _level(self, level: Level | None, step: int | None) -> Level:
        if level is not None:
            return level
        if self._open:
            return self._open[-1]
        return Level.BATCH if step is not None else Level.TRIAL_RUN

    def track(
        self,
        metric: str,
        value: float | None,
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
        per_label: Mapping[str, float] | None = None,
    ) -> None:
        """Record one value (see the module table for where each level goes)."""
        level = self._level(level, step)
        if level in (Level.EXPERIMENT, Level.TRIAL):
            self._track_above(level, [(metric, value, per_label)], step)
            return
        run = self.trial_run_id
        if run is None:
            self._nowhere([metric], level)
            return
        if level in (Level.TRIAL_RUN, Level.PIPELINE) and step is not None:
            level = Level.BATCH  # a run-level value with a step is a point of a series, not a result
        if level is Level.BATCH:
            step = step if step is not None else 0
            self.writer.add_step(run, step, self._epoch(epoch), metric, value)
            if per_label:  # step rows have no per-label column: one series per label
                labelled = {f"{metric}/{k}": v for k, v in per_label.items()}
                self.writer.add_steps(run, step, self._epoch(epoch), labelled)
        elif level is Level.EPOCH:
            idx = self._epoch(epoch)
            if idx is None:
                log.debug("DBTracker: epoch metric %s outside an epoch: stored as a result", metric)
                self.writer.submit(self.manager.record_results_metrics, run, [(metric, value, per_label)])
                return
            self._ensure_epoch(idx)
            self.writer.submit(self.manager.record_epoch_metrics, run, idx, [(metric, value, per_label)])
        else:  # TRIAL_RUN, PIPELINE
            self.writer.submit(self.manager.record_results_metrics, run, [(metric, value, per_label)])

    def _track_above(
        self, level: Level, items: list[tuple[str, float | None, Any]], step: int | None
    ) -> None:
        """EXPERIMENT / TRIAL level values: ``experiment_metric`` / ``trial_metric`` rows."""
        if level is Level.EXPERIMENT:
            owner, record = self.experiment_id, self.manager.record_experiment_metrics
        else:
            owner, record = self.trial_id, self.manager.record_trial_metrics
        if owner is None:
            self._nowhere([name for name, _, _ in items], level)
            return
        self.writer.submit(record, owner, items, step=step)

    def _nowhere(self, names: list[str], level: Level) -> None:
        for name in names:
            if (name, level.name) not in self._warned:
                self._warned.add((name, level.name))
                log.warning(
                    "DBTracker: %s tracked at %s level with no open %s: not stored "
                    "(open one with TrackScope / on_create + on_start first; warned once per metric)",
                    name,
                    level.name,
                    "trial run" if level > Level.TRIAL else level.name.lower(),
                )

    def track_dict(
        self,
        metrics: Mapping[str, float | None],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """Record several scalar values; at BATCH level this is one buffered append."""
        run = self.trial_run_id
        if not metrics:
            return
        level = self._level(level, step)
        if run is not None and (
            level is Level.BATCH or (step is not None and level in (Level.TRIAL_RUN, Level.PIPELINE))
        ):
            # The hot path (the logger's log_metrics): a lock and an append, nothing else. A
            # run-level value with a step is a point of a series too, as in track().
            ep = epoch if epoch is not None else self.epoch_idx
            self.writer.add_steps(run, step if step is not None else 0, ep, dict(metrics))
            return
        if level in (Level.EXPERIMENT, Level.TRIAL):
            self._track_above(level, [(name, value, None) for name, value in metrics.items()], step)
            return
        if run is None:
            self._nowhere(list(metrics), level)
            return
        items = [(name, value, None) for name, value in metrics.items()]
        if level is Level.EPOCH:
            idx = self._epoch(epoch)
            if idx is not None:
                self._ensure_epoch(idx)
                self.writer.submit(self.manager.record_epoch_metrics, run, idx, items)
                return
            level = Level.TRIAL_RUN
        self.writer.submit(self.manager.record_results_metrics, run, items)

    def _epoch(self, epoch: int | None) -> int | None:
        return int(epoch) if epoch is not None else self.epoch_idx

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Store hyperparameters of the open run as ``run_param`` rows (nested keys dotted)."""
        if self.trial_run_id is None:
            self._nowhere(["params"], Level.TRIAL_RUN)
            return
        flat = flatten_params(params)
        if flat:
            self.writer.submit(self.manager.log_params, self.trial_run_id, flat)
