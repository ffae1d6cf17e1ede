"""Trackers: level events, metrics, params and artifacts fanned out to storage backends.

Importing this package is cheap: backends (MLflow, TensorBoard, the database) are imported
only when a tracker of that type is built.

Files: ``base.py`` (the Tracker contract, TrackerManager, TrackScope), ``normalize.py`` (metric
values as trackers receive them), ``registry.py`` (``type:`` names -> trackers); one backend each:
``db.py`` (with ``db_metrics.py`` and ``db_artifacts.py``), ``mlflow.py`` (with ``mlflow_runs.py``),
``log.py`` (the per-level log files, through :mod:`lightning_expman.logfiles`), ``tensorboard.py``,
``system.py``.

Example:
    >>> from lightning_expman import Level
    >>> from lightning_expman.tracking import TrackerManager, TrackScope
    >>> manager = TrackerManager.from_config([{"type": "db", "url": "sqlite:///runs.db"}])
    >>> with TrackScope(manager, Level.EXPERIMENT, name="demo"):
    ...     pass
"""

from __future__ import annotations

from .base import Tracker, TrackerManager, TrackScope, normalize_metric, status_for_exception
from .registry import build_tracker, register_tracker, registered_trackers

__all__ = [
    "TrackScope",
    "Tracker",
    "TrackerManager",
    "build_tracker",
    "normalize_metric",
    "register_tracker",
    "registered_trackers",
    "status_for_exception",
]
