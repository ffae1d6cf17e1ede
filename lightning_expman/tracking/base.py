"""The tracker contract: :class:`Tracker`, :class:`TrackerManager` and :class:`TrackScope`.

A tracker receives level events (EXPERIMENT > TRIAL > TRIAL_RUN > PIPELINE > EPOCH > BATCH),
metric values, parameters and artifacts, and persists them somewhere (a database, MLflow,
log files...). Every method has a no-op default, so a tracker implements only what it stores.

Events and the keyword arguments callers pass (trackers must accept and ignore unknown ones):

======================  ==================================================================
``on_create(level)``    EXPERIMENT: ``name``, ``desc``, ``config``, ``tags``, ``workdir``
                        TRIAL: ``name``, ``config``, ``tags``, ``workdir``
                        TRIAL_RUN: ``repeat_idx``, ``seed``, ``config``, ``context``, ``tags``,
                        ``workdir``
                        PIPELINE: ``stage`` ("fit", "validate", "test", "predict")
                        EPOCH: ``epoch_idx``
``on_start(level)``     the entity starts running (no kwargs required)
``on_end(level)``       ``status`` (:class:`RunStatus`, default COMPLETED), ``error`` (text),
                        and for TRIAL_RUN ``stop_epoch`` when early stopping ended it
``on_add_artifact``     ``(level, artifact_path, artifact_type)``; ``epoch`` for EPOCH,
                        ``results=True`` for a TRIAL_RUN file that belongs to its RESULTS
``on_checkpoint``       ``(network, checkpoint_path, metrics)``; ``epoch``, ``best``
``on_remove_artifact``  ``(level, artifact_path, artifact_type)``: a file reported earlier by
                        ``on_add_artifact`` / ``on_checkpoint`` at ``level`` or below (its
                        epochs, its RESULTS) was deleted (e.g. by ModelCheckpoint's top-k
                        rotation); ``epoch`` when known
======================  ==================================================================

Metrics reach trackers normalised by :class:`TrackerManager` (:func:`normalize_metric`, in
:mod:`lightning_expman.tracking.normalize`): ``metric`` is a ``str`` name,
``value`` a ``float`` (or ``None`` for NaN/inf), ``per_label`` an optional ``{label: float}``.
``level`` says where the value belongs: BATCH = a step-series point (``step`` is the global
step), EPOCH = a value of epoch ``epoch`` (the open epoch when ``None``), TRIAL_RUN = a final
result of the run (e.g. ``trainer.test()``), or with a ``step`` a point of the run's series;
TRIAL / EXPERIMENT = a value of the trial / experiment itself (the seed's "metric tracking at
experiment, trial and run levels"). ``level=None`` means the innermost open level.

Example:
    >>> from lightning_expman import Level, Metric
    >>> from lightning_expman.tracking import TrackerManager, TrackScope
    >>> manager = TrackerManager([])              # usually built from env.yaml's ``trackers``
    >>> with TrackScope(manager, Level.EXPERIMENT, name="demo"):
    ...     with TrackScope(manager, Level.TRIAL, name="small"):
    ...         with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=42):
    ...             with TrackScope(manager, Level.EPOCH, epoch_idx=0):
    ...                 manager.track(Metric.VAL_LOSS, 0.25)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..enums import Level, Metric, MetricKey, RunStatus
from .normalize import normalize_metric

__all__ = ["TrackScope", "Tracker", "TrackerManager", "normalize_metric", "status_for_exception"]

log = logging.getLogger(__name__)


class Tracker:
    """Base class of trackers: every hook is a no-op; override what your backend stores.

    Subclasses registered with :func:`lightning_expman.tracking.register_tracker` can be built
    from ``trackers: [{type: NAME, ...}]`` in env.yaml; the remaining keys are constructor kwargs.
    A tracker must tolerate being pickled before use (Lightning pickles loggers for spawn-based
    strategies): open connections lazily, on the first event.
    """

    def attach(self, manager: TrackerManager) -> None:
        """Called when the tracker joins ``manager``: a tracker that produces values itself (the
        ``system`` tracker's samples) keeps it to hand them to the other trackers."""

    def on_create(self, level: Level, **kwargs: Any) -> None:
        """An entity at ``level`` was created (see the module docstring for kwargs)."""

    def on_start(self, level: Level, **kwargs: Any) -> None:
        """The entity at ``level`` starts."""

    def on_end(self, level: Level, **kwargs: Any) -> None:
        """The entity at ``level`` ended with ``kwargs["status"]`` (COMPLETED when absent)."""

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
        """Record one metric value (already normalised by the manager)."""

    def track_dict(
        self,
        metrics: Mapping[str, float | None],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """Record several scalar values at once; the default calls :meth:`track` for each."""
        for name, value in metrics.items():
            self.track(name, value, step, level=level, epoch=epoch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters of the open trial run (nested mappings allowed)."""

    def on_add_artifact(
        self,
        level: Level,
        artifact_path: str,
        artifact_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Record a file produced at ``level`` (``epoch=`` may name the epoch for EPOCH)."""

    def on_checkpoint(
        self,
        network: Any,
        checkpoint_path: str,
        metrics: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """A checkpoint was written to ``checkpoint_path``.

        Keyword args: ``epoch`` (the epoch it was saved at), ``best`` (True when it is the
        run's best checkpoint so far: it belongs to the run's RESULTS).
        """

    def on_remove_artifact(
        self,
        level: Level,
        artifact_path: str,
        artifact_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        """A file recorded earlier at ``level`` (or below it) no longer exists.

        Sent when the producer deletes a file it reported, e.g. a checkpoint that top-k rotation
        replaced. Trackers that record file paths drop (or mark) the record so that it never
        points at a missing file; trackers holding their own copy may keep it.
        Keyword args: ``epoch`` (the epoch it was saved at, when known).
        """

    def flush(self) -> None:
        """Push buffered writes to storage (called at epoch end and before the process exits)."""

    def close(self) -> None:
        """Flush and release resources; the tracker may be re-opened by the next event."""
        self.flush()


def status_for_exception(exc: BaseException | None) -> RunStatus:
    """Map how a block ended to a status: None -> COMPLETED, KeyboardInterrupt/SystemExit -> ABORTED,
    StopIteration (the seed's early-stopping signal) -> STOPPED, anything else -> FAILED."""
    if exc is None:
        return RunStatus.COMPLETED
    if isinstance(exc, StopIteration):
        return RunStatus.STOPPED
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return RunStatus.ABORTED
    return RunStatus.FAILED


class TrackerManager(Tracker):
    """Fans every event out to its trackers; itself a :class:`Tracker`, so managers nest.

    It normalises metric values once (see :func:`normalize_metric`), drops untracked metrics
    (``Metric.NETWORK``...), and remembers which levels are open so ``level=None`` resolves to
    the innermost one. A tracker that raises does not stop the others: the error is logged
    and re-raised after every tracker has seen the event.

    Example:
        >>> from lightning_expman.tracking import TrackerManager
        >>> manager = TrackerManager.from_config([{"type": "db", "url": "sqlite:///runs.db"}])
        >>> manager.track("val_loss", 0.3, step=10)
    """

    def __init__(self, trackers: Iterable[Tracker] = ()) -> None:
        self.trackers: list[Tracker] = []
        self.open_levels: list[Level] = []
        for tracker in trackers:
            self.add_tracker(tracker)

    @classmethod
    def from_config(cls, specs: Iterable[Mapping[str, Any] | Tracker], **defaults: Any) -> TrackerManager:
        """Build trackers from env.yaml-style specs (``{"type": "db", ...}``) or instances.

        ``defaults`` (e.g. ``workspace=...``) are offered to every tracker factory that accepts them.
        """
        from .registry import build_tracker

        return cls(build_tracker(spec, **defaults) for spec in specs)

    def add_tracker(self, tracker: Tracker) -> None:
        self.trackers.append(tracker)
        attach = getattr(tracker, "attach", None)  # duck-typed trackers need not have it
        if attach is not None:
            attach(self)

    def get(self, kind: type[Tracker]) -> Tracker | None:
        """The first tracker that is an instance of ``kind`` (searching nested managers)."""
        for tracker in self.trackers:
            if isinstance(tracker, kind):
                return tracker
            if isinstance(tracker, TrackerManager):
                found = tracker.get(kind)
                if found is not None:
                    return found
        return None

    def __iter__(self) -> Iterator[Tracker]:
        return iter(self.trackers)

    def __len__(self) -> int:
        return len(self.trackers)

    @property
    def current_level(self) -> Level | None:
        return self.open_levels[-1] if self.open_levels else None

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        first_error: BaseException | None = None
        for tracker in self.trackers:
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception as e:
                log.error("tracker %s failed in %s: %s", type(tracker).__name__, method, e)
                first_error = first_error or e
        if first_error is not None:
            raise first_error

    # -- lifecycle
    def on_create(self, level: Level, *args: Any, **kwargs: Any) -> None:
        """Tell every tracker an entity at ``level`` was created.

        The seed's spellings are accepted: the name as the first positional argument
        (``on_create(Level.EXPERIMENT, "digits")``), ``experiment_name=`` / ``trial_name=``, and
        ``trial_id=`` alone (named ``trial_<id>``); trackers receive ``name=``.
        """
        level = Level(level)
        if args:
            if len(args) > 1 or "name" in kwargs:
                raise TypeError(f"on_create({level.name}): give the name once, got {args!r} and {kwargs!r}")
            kwargs["name"] = args[0]
        if kwargs.get("name") is None:
            alias = {Level.EXPERIMENT: "experiment_name", Level.TRIAL: "trial_name"}.get(level)
            if alias and kwargs.get(alias) is not None:
                kwargs["name"] = kwargs[alias]
            elif level is Level.TRIAL and kwargs.get("trial_id") is not None:
                kwargs["name"] = f"trial_{kwargs['trial_id']}"
        self._each("on_create", level, **kwargs)

    def on_start(self, level: Level, **kwargs: Any) -> None:
        self.open_levels.append(level)
        self._each("on_start", level, **kwargs)

    def on_end(self, level: Level, **kwargs: Any) -> None:
        kwargs.setdefault("status", RunStatus.COMPLETED)
        kwargs["status"] = RunStatus.parse(kwargs["status"])
        if level in self.open_levels:
            # Close inner levels left open by an exception before closing this one.
            del self.open_levels[self.open_levels.index(level) :]
        self._each("on_end", level, **kwargs)

    # -- metrics
    def _resolve(self, level: Level | None) -> Level | None:
        return level if level is not None else self.current_level

    def track(  # type: ignore[override]
        self,
        metric: MetricKey,
        value: Any,
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
        per_label: Mapping[str, float] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        """Record ``value`` of ``metric``; see :func:`normalize_metric` for accepted values."""
        if isinstance(metric, Metric) and not metric.tracked:
            return
        name, total, labelled = normalize_metric(metric, value, labels)
        level = self._resolve(level)
        self._each("track", name, total, step, level=level, epoch=epoch, per_label=per_label or labelled)

    def track_dict(  # type: ignore[override]
        self,
        metrics: Mapping[MetricKey, Any],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """Record several metrics; scalar ones go to trackers in one ``track_dict`` call."""
        level = self._resolve(level)
        scalars: dict[str, float | None] = {}
        for metric, value in metrics.items():
            # Fast path for what Lightning's log_metrics passes (str -> float): no normalisation.
            if type(value) is float and type(metric) is str and metric != "custom":
                scalars[metric] = value if math.isfinite(value) else None
                continue
            if isinstance(metric, Metric) and not metric.tracked:
                continue
            name, total, labelled = normalize_metric(metric, value)
            if labelled:
                self._each("track", name, total, step, level=level, epoch=epoch, per_label=labelled)
            else:
                scalars[name] = total
        if scalars:
            self._each("track_dict", scalars, step, level=level, epoch=epoch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._each("log_params", params)

    def on_add_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        self._each("on_add_artifact", level, str(artifact_path), artifact_type, **kwargs)

    def on_checkpoint(
        self, network: Any, checkpoint_path: str, metrics: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        self._each("on_checkpoint", network, str(checkpoint_path), metrics, **kwargs)

    def on_remove_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        self._each("on_remove_artifact", level, str(artifact_path), artifact_type, **kwargs)

    def flush(self) -> None:
        self._each("flush")

    def close(self) -> None:
        self._each("close")

    def track_scope(self, level: Level, **create_kwargs: Any) -> TrackScope:
        """The seed's ``with tracker.track_scope(Level.TRIAL, trial_id=1):``: a :class:`TrackScope`.

        Example:
            >>> with manager.track_scope(Level.TRIAL, trial_name="small"):
            ...     manager.track(Metric.TRAIN_LOSS, 0.345, step=2)   # a TRIAL-level value
        """
        return TrackScope(self, level, **create_kwargs)


class TrackScope:
    """Context manager for one level: ``on_create`` + ``on_start`` on enter, ``on_end`` on exit.

    The block's outcome becomes the status (see :func:`status_for_exception`): an exception
    ends the level FAILED with its text, Ctrl-C ends it ABORTED; the exception propagates.
    ``create_kwargs`` go to ``on_create`` (the seed's ``trial_name=`` names the trial, like ``name=``).

    Example:
        >>> with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=43) as tracker:
        ...     tracker.track(Metric.TRAIN_LOSS, 0.345, step=2)
    """

    def __init__(self, manager: Tracker, level: Level, **create_kwargs: Any) -> None:
        self.manager = manager
        self.level = Level(level)
        self.create_kwargs = create_kwargs
        self.status: RunStatus | None = None

    def __enter__(self) -> Tracker:
        self.manager.on_create(self.level, **self.create_kwargs)
        self.manager.on_start(self.level)
        return self.manager

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.status = status_for_exception(exc)
        error = None if exc is None or self.status is RunStatus.STOPPED else f"{type(exc).__name__}: {exc}"
        self.manager.on_end(self.level, status=self.status, error=error)
